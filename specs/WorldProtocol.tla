--------------------------- MODULE WorldProtocol ---------------------------
(***************************************************************************)
(* The Sekai world protocol: a refinement of the seed's ExtendedWorldState *)
(* (players, pending inputs, a frame number, a frame log, entities) with   *)
(* what the real system adds:                                              *)
(*                                                                         *)
(*  - regions, each with a lease (holder, epoch);                          *)
(*  - T1 (SubmitInput): append (player, seq) to the region's inbox under a *)
(*    versionstamp; on commit_unknown_result the client retries the same  *)
(*    (player, seq), which may leave a duplicate inbox entry;              *)
(*  - T2 (RunFrame): the lease holder reads the lease, the inbox and the   *)
(*    applied records in one transaction, applies each (player, seq) at    *)
(*    most once and in seq order, appends a change-log delta and a frame   *)
(*    record, clears what it consumed and bumps the frame number by one;   *)
(*    the region's entities come from the processor's cache, valid only    *)
(*    under its lease epoch; on commit_unknown_result it reloads, retries; *)
(*  - processor crashes and lease takeovers (a stale holder's T2 reads the *)
(*    new epoch and writes nothing);                                       *)
(*  - edges: a cursor per client, change-log trimming, resume (replay from *)
(*    the cursor if nothing after it was trimmed, otherwise a snapshot).   *)
(*                                                                         *)
(* Entity state is one tree per region (hp), wood in player inventories    *)
(* and wood on the ground, so that conservation can be stated.             *)
(*                                                                         *)
(* Versionstamps are abstracted to what the protocol compares: an inbox is *)
(* a sequence in versionstamp order; change-log entries are numbered by a  *)
(* per-region counter (0 = none), compared with cursors, trim point, head. *)
(*                                                                         *)
(* The executable twin is the Rust crate sekai-specs (specs/src), checked  *)
(* exhaustively with stateright by `cargo test -p sekai-specs`.            *)
(***************************************************************************)
EXTENDS Integers, Sequences, FiniteSets

CONSTANTS
    NumRegions,      \* regions (shards of the world)
    NumPlayers,      \* players; player p sends inputs to region Home(p)
    NumWatchers,     \* edge clients; client c watches region Watched(c)
    NumProcs,        \* region processors competing for leases
    MaxSeq,          \* inputs per player, with seqs 1..MaxSeq
    TreeHp,          \* initial hp of each region's tree
    MaxT1Unknown,    \* T1 commits that may end in commit_unknown_result
    MaxT2Unknown,    \* T2 commits that may end in commit_unknown_result
    MaxCrashes,      \* processor crashes
    MaxTakeovers,    \* lease takeovers (expiry under a dead or partitioned holder)
    MaxDisconnects,  \* edge disconnects
    MaxTrims         \* change-log entries trimmed

Regions == 0 .. (NumRegions - 1)
Players == 0 .. (NumPlayers - 1)
Watchers == 0 .. (NumWatchers - 1)
Procs == 0 .. (NumProcs - 1)
Seqs == 1 .. MaxSeq
NoProc == -1

Home(p) == p % NumRegions
Watched(c) == c % NumRegions
Owner(r) == r % NumProcs

Script == <<"harvest", "build", "harvest">>
Kind(s) == Script[((s - 1) % Len(Script)) + 1]

Outcomes == {"committed", "unknown_applied", "unknown_not_applied"}
Unknown(o) == o # "committed"
Applies(o) == o # "unknown_not_applied"

InitView == [frame |-> 0, hp |-> TreeHp, ground |-> 0]
(* A processor's belief about a region it does not hold. Whenever `loaded` *)
(* is FALSE the cache is InitView, a placeholder: the Rust twin has no     *)
(* cache at all there (None), so both count the same distinct states.      *)
NoHeld == [holds |-> FALSE, epoch |-> 0, loaded |-> FALSE, cache |-> InitView]

VARIABLES
    inbox,      \* inbox[r]: pending [player, seq] in versionstamp order
    applied,    \* applied[r][p]: last seq of p applied in r (0 = none)
    dbView,     \* dbView[r]: [frame, hp, ground], the region's frame number and entities
    frameLog,   \* frameLog[r]: frame numbers of the frame records, in commit order
    changelog,  \* changelog[r]: retained [vs, harvested, built] deltas, in vs order
    trimmed,    \* trimmed[r]: vs of the last trimmed change-log entry (0 = none)
    head,       \* head[r]: vs of the newest change-log entry (0 = none)
    nextVs,     \* nextVs[r]: vs of the region's next change-log entry
    lease,      \* lease[r]: [holder, epoch]
    inventory,  \* inventory[p]: wood the player carries
    harvested,  \* ghost: harvested[r], wood ever taken from r's tree
    nextSeq,    \* client: nextSeq[p], the next new seq p sends
    acked,      \* client: acked[p], seqs whose T1 p saw acknowledged
    retry,      \* client: retry[p], seqs whose T1 ended unknown, to be retried
    history,    \* ghost: history[p], seqs of p applied by T2, in order
    edge,       \* edge[c]: [connected, cursor, mirror]
    held,       \* held[q][r]: [holds, epoch, loaded, cache], q's belief about r's lease
    budget      \* fault budgets left

db == <<inbox, applied, dbView, frameLog, changelog, trimmed, head, nextVs,
        lease, inventory, harvested>>
clients == <<nextSeq, acked, retry, history>>
vars == <<db, clients, edge, held, budget>>

-----------------------------------------------------------------------------
(* Initial state: empty inboxes and logs, full trees, region r leased at   *)
(* epoch 1 to processor Owner(r), whose cache holds the region.            *)

Init ==
    /\ inbox = [r \in Regions |-> <<>>]
    /\ applied = [r \in Regions |-> [p \in Players |-> 0]]
    /\ dbView = [r \in Regions |-> InitView]
    /\ frameLog = [r \in Regions |-> <<>>]
    /\ changelog = [r \in Regions |-> <<>>]
    /\ trimmed = [r \in Regions |-> 0]
    /\ head = [r \in Regions |-> 0]
    /\ nextVs = [r \in Regions |-> 1]
    /\ lease = [r \in Regions |-> [holder |-> Owner(r), epoch |-> 1]]
    /\ inventory = [p \in Players |-> 0]
    /\ harvested = [r \in Regions |-> 0]
    /\ nextSeq = [p \in Players |-> 1]
    /\ acked = [p \in Players |-> {}]
    /\ retry = [p \in Players |-> {}]
    /\ history = [p \in Players |-> <<>>]
    /\ edge = [c \in Watchers |-> [connected |-> TRUE, cursor |-> 0, mirror |-> InitView]]
    /\ held = [q \in Procs |-> [r \in Regions |->
                 IF Owner(r) = q
                 THEN [holds |-> TRUE, epoch |-> 1, loaded |-> TRUE, cache |-> InitView]
                 ELSE NoHeld]]
    /\ budget = [t1Unknown |-> MaxT1Unknown, t2Unknown |-> MaxT2Unknown,
                 crashes |-> MaxCrashes, takeovers |-> MaxTakeovers,
                 disconnects |-> MaxDisconnects, trims |-> MaxTrims]

-----------------------------------------------------------------------------
(* T1: sekai_layer::world::inbox::submit_input.                            *)
(* A write-only append under a versionstamped key, so appenders never      *)
(* conflict. Clients pipeline: a new seq may go out while an older one     *)
(* awaits its retry.                                                       *)

SubmitInput(p, s, o) ==
    LET isNew == s = nextSeq[p] /\ s <= MaxSeq
    IN  /\ isNew \/ s \in retry[p]
        /\ Unknown(o) => budget.t1Unknown > 0
        /\ budget' = IF Unknown(o) THEN [budget EXCEPT !.t1Unknown = @ - 1] ELSE budget
        /\ inbox' = IF Applies(o)
                    THEN [inbox EXCEPT ![Home(p)] = Append(@, [player |-> p, seq |-> s])]
                    ELSE inbox
        /\ nextSeq' = IF isNew THEN [nextSeq EXCEPT ![p] = s + 1] ELSE nextSeq
        /\ IF Unknown(o)
           THEN /\ retry' = [retry EXCEPT ![p] = @ \cup {s}]
                /\ UNCHANGED acked
           ELSE /\ retry' = [retry EXCEPT ![p] = @ \ {s}]
                /\ acked' = [acked EXCEPT ![p] = @ \cup {s}]
        /\ UNCHANGED <<applied, dbView, frameLog, changelog, trimmed, head, nextVs,
                       lease, inventory, harvested, history, edge, held>>

-----------------------------------------------------------------------------
(* T2: sekai_layer::world::processor::run_frame.                           *)

(* One entry of the plan: apply it if it is the player's next seq, drop it *)
(* if it was applied already (a duplicate), keep it if a seq is missing.   *)
PlanStep(acc, e) ==
    LET last == acc.last[e.player]
    IN  IF e.seq = last + 1
        THEN [acc EXCEPT !.apply = Append(@, e), !.last[e.player] = e.seq]
        ELSE IF e.seq > last + 1
             THEN [acc EXCEPT !.keep = Append(@, e)]
             ELSE acc

RECURSIVE PlanFrom(_, _, _)
PlanFrom(q, i, acc) ==
    IF i > Len(q) THEN acc ELSE PlanFrom(q, i + 1, PlanStep(acc, q[i]))

Plan(r) == PlanFrom(inbox[r], 1, [apply |-> <<>>, keep |-> <<>>, last |-> applied[r]])

(* The game rules for one applied input.                                   *)
Effect(st, e) ==
    IF Kind(e.seq) = "harvest" /\ st.view.hp > 0
    THEN [st EXCEPT !.view.hp = @ - 1, !.inv[e.player] = @ + 1, !.harvested = @ + 1]
    ELSE IF Kind(e.seq) = "build" /\ st.inv[e.player] > 0
         THEN [st EXCEPT !.inv[e.player] = @ - 1, !.view.ground = @ + 1, !.built = @ + 1]
         ELSE st

ApplyStep(st, e) == [Effect(st, e) EXCEPT !.hist[e.player] = Append(@, e.seq)]

RECURSIVE ApplyFrom(_, _, _)
ApplyFrom(es, i, st) ==
    IF i > Len(es) THEN st ELSE ApplyFrom(es, i + 1, ApplyStep(st, es[i]))

RunFrame(q, r, o) ==
    LET h == held[q][r]
        plan == Plan(r)
    IN  /\ h.holds
        /\ h.loaded
        /\ Len(plan.keep) < Len(inbox[r])   \* something to consume
        /\ IF lease[r] # [holder |-> q, epoch |-> h.epoch]
           THEN \* The transaction read another epoch: no writes; q steps down.
                /\ o = "committed"
                /\ held' = [held EXCEPT ![q][r] = NoHeld]
                /\ UNCHANGED <<db, clients, edge, budget>>
           ELSE LET res == ApplyFrom(plan.apply, 1,
                              [view |-> h.cache, inv |-> inventory, hist |-> history,
                               harvested |-> 0, built |-> 0])
                    after == [res.view EXCEPT !.frame = h.cache.frame + 1]
                    vs == nextVs[r]
                IN  /\ Unknown(o) => budget.t2Unknown > 0
                    /\ budget' = IF Unknown(o) THEN [budget EXCEPT !.t2Unknown = @ - 1]
                                 ELSE budget
                    /\ IF Applies(o)
                       THEN /\ inbox' = [inbox EXCEPT ![r] = plan.keep]
                            /\ applied' = [applied EXCEPT ![r] = plan.last]
                            /\ dbView' = [dbView EXCEPT ![r] = after]
                            /\ frameLog' = [frameLog EXCEPT ![r] = Append(@, h.cache.frame)]
                            /\ changelog' = [changelog EXCEPT ![r] = Append(@,
                                   [vs |-> vs, harvested |-> res.harvested, built |-> res.built])]
                            /\ head' = [head EXCEPT ![r] = vs]
                            /\ nextVs' = [nextVs EXCEPT ![r] = vs + 1]
                            /\ inventory' = res.inv
                            /\ history' = res.hist
                            /\ harvested' = [harvested EXCEPT ![r] = @ + res.harvested]
                       ELSE UNCHANGED <<inbox, applied, dbView, frameLog, changelog, head,
                                        nextVs, inventory, history, harvested>>
                    \* After an unknown result the cache cannot be trusted: it is dropped
                    \* (InitView is only a placeholder, as in NoHeld) and reloaded first.
                    /\ held' = [held EXCEPT ![q][r] =
                                  IF o = "committed" THEN [h EXCEPT !.cache = after]
                                  ELSE [h EXCEPT !.loaded = FALSE, !.cache = InitView]]
                    /\ UNCHANGED <<trimmed, lease, nextSeq, acked, retry, edge>>

-----------------------------------------------------------------------------
(* Leases: sekai_layer::world::lease::acquire; crashes; cache reloads.     *)

Grant(q, r) ==
    /\ lease' = [lease EXCEPT ![r] = [holder |-> q, epoch |-> lease[r].epoch + 1]]
    /\ held' = [held EXCEPT ![q][r] = [holds |-> TRUE, epoch |-> lease[r].epoch + 1,
                                       loaded |-> TRUE, cache |-> dbView[r]]]

(* Take a free lease, or one's own lease again after a restart.            *)
Acquire(q, r) ==
    /\ ~held[q][r].holds
    /\ lease[r].holder \in {NoProc, q}
    /\ Grant(q, r)
    /\ UNCHANGED <<inbox, applied, dbView, frameLog, changelog, trimmed, head, nextVs,
                   inventory, harvested, clients, edge, budget>>

(* Another holder's lease expired (it is dead or partitioned) and q takes  *)
(* it; the old holder may still believe it holds the lease.                *)
Takeover(q, r) ==
    /\ budget.takeovers > 0
    /\ ~held[q][r].holds
    /\ lease[r].holder \notin {NoProc, q}
    /\ Grant(q, r)
    /\ budget' = [budget EXCEPT !.takeovers = @ - 1]
    /\ UNCHANGED <<inbox, applied, dbView, frameLog, changelog, trimmed, head, nextVs,
                   inventory, harvested, clients, edge>>

(* The processor loses its memory; its leases stay in the database.        *)
Crash(q) ==
    /\ budget.crashes > 0
    /\ {r \in Regions : held[q][r].holds} # {}   \* (not \E: TLC would count one successor per r)
    /\ held' = [held EXCEPT ![q] = [r \in Regions |-> NoHeld]]
    /\ budget' = [budget EXCEPT !.crashes = @ - 1]
    /\ UNCHANGED <<db, clients, edge>>

(* After an unknown T2 result: re-read the region, checking the lease.     *)
Reload(q, r) ==
    /\ held[q][r].holds
    /\ ~held[q][r].loaded
    /\ held' = IF lease[r] = [holder |-> q, epoch |-> held[q][r].epoch]
               THEN [held EXCEPT ![q][r].loaded = TRUE, ![q][r].cache = dbView[r]]
               ELSE [held EXCEPT ![q][r] = NoHeld]
    /\ UNCHANGED <<db, clients, edge, budget>>

-----------------------------------------------------------------------------
(* Edges: sekai_layer::world::changelog::read_from, ::trim and             *)
(* sekai_edge::session::Session::resume.                                   *)

MustSnapshot(c) == edge[c].cursor < trimmed[Watched(c)]

Snapshot(c) == [edge[c] EXCEPT !.mirror = dbView[Watched(c)], !.cursor = head[Watched(c)]]

ApplyDelta(v, d) == [frame |-> v.frame + 1, hp |-> v.hp - d.harvested,
                     ground |-> v.ground + d.built]

RECURSIVE ReplayFrom(_, _, _, _)
ReplayFrom(log, i, cursor, v) ==
    IF i > Len(log) THEN v
    ELSE ReplayFrom(log, i + 1, cursor,
                    IF log[i].vs > cursor THEN ApplyDelta(v, log[i]) ELSE v)

(* Replay every retained delta after the cursor, up to the head.           *)
CatchUp(c) ==
    [edge[c] EXCEPT !.mirror = ReplayFrom(changelog[Watched(c)], 1, edge[c].cursor, @),
                    !.cursor = head[Watched(c)]]

Deliver(c) ==
    /\ edge[c].connected
    /\ edge[c].cursor < head[Watched(c)]
    /\ edge' = [edge EXCEPT ![c] = IF MustSnapshot(c) THEN Snapshot(c) ELSE CatchUp(c)]
    /\ UNCHANGED <<db, clients, held, budget>>

Disconnect(c) ==
    /\ edge[c].connected
    /\ budget.disconnects > 0
    /\ edge' = [edge EXCEPT ![c].connected = FALSE]
    /\ budget' = [budget EXCEPT !.disconnects = @ - 1]
    /\ UNCHANGED <<db, clients, held>>

Resume(c) ==
    /\ ~edge[c].connected
    /\ edge' = [edge EXCEPT ![c] = IF MustSnapshot(c)
                                   THEN [Snapshot(c) EXCEPT !.connected = TRUE]
                                   ELSE [edge[c] EXCEPT !.connected = TRUE]]
    /\ UNCHANGED <<db, clients, held, budget>>

Trim(r) ==
    /\ budget.trims > 0
    /\ changelog[r] # <<>>
    /\ trimmed' = [trimmed EXCEPT ![r] = Head(changelog[r]).vs]
    /\ changelog' = [changelog EXCEPT ![r] = Tail(@)]
    /\ budget' = [budget EXCEPT !.trims = @ - 1]
    /\ UNCHANGED <<inbox, applied, dbView, frameLog, head, nextVs, lease, inventory,
                   harvested, clients, edge, held>>

-----------------------------------------------------------------------------

Next ==
    \/ \E p \in Players, s \in Seqs, o \in Outcomes : SubmitInput(p, s, o)
    \/ \E q \in Procs, r \in Regions, o \in Outcomes : RunFrame(q, r, o)
    \/ \E q \in Procs, r \in Regions : Acquire(q, r) \/ Takeover(q, r) \/ Reload(q, r)
    \/ \E q \in Procs : Crash(q)
    \/ \E c \in Watchers : Deliver(c) \/ Disconnect(c) \/ Resume(c)
    \/ \E r \in Regions : Trim(r)

Spec == Init /\ [][Next]_vars

(* Fairness for the liveness property: clients keep retrying, processors   *)
(* keep running frames, reloading and re-acquiring their own leases.       *)
Fairness ==
    /\ \A p \in Players, s \in Seqs : WF_vars(SubmitInput(p, s, "committed"))
    /\ \A q \in Procs, r \in Regions :
         /\ WF_vars(RunFrame(q, r, "committed"))
         /\ WF_vars(Reload(q, r))
         /\ WF_vars(Acquire(q, r))

FairSpec == Spec /\ Fairness

-----------------------------------------------------------------------------
(* Invariants. The names match the stateright properties of sekai-specs.   *)

View == [frame : Nat, hp : 0 .. TreeHp, ground : 0 .. (NumRegions * TreeHp)]
Entry == [player : Players, seq : Seqs]
Delta == [vs : Nat, harvested : Nat, built : Nat]

TypeOK ==
    /\ \A r \in Regions :
         /\ inbox[r] \in Seq(Entry)
         /\ \A i \in 1 .. Len(inbox[r]) : Home(inbox[r][i].player) = r
         /\ applied[r] \in [Players -> 0 .. MaxSeq]
         /\ dbView[r] \in View
         /\ frameLog[r] \in Seq(Nat)
         /\ changelog[r] \in Seq(Delta)
         /\ \A i \in 1 .. Len(changelog[r]) :
              /\ trimmed[r] < changelog[r][i].vs
              /\ changelog[r][i].vs <= head[r]
              /\ i > 1 => changelog[r][i - 1].vs < changelog[r][i].vs
         /\ trimmed[r] <= head[r]
         /\ head[r] < nextVs[r]
         /\ lease[r].holder \in Procs \cup {NoProc}
         /\ lease[r].epoch \in Nat
         /\ harvested[r] \in Nat
    /\ \A p \in Players :
         /\ nextSeq[p] \in 1 .. (MaxSeq + 1)
         /\ acked[p] \cup retry[p] \subseteq 1 .. (nextSeq[p] - 1)
         /\ inventory[p] \in 0 .. (NumRegions * TreeHp)
         /\ history[p] \in Seq(Seqs)
    /\ \A c \in Watchers :
         /\ edge[c].connected \in BOOLEAN
         /\ edge[c].cursor \in 0 .. head[Watched(c)]
    /\ \A q \in Procs, r \in Regions :
         held[q][r].holds => held[q][r].epoch <= lease[r].epoch

(* No (player, seq) is applied twice.                                      *)
AtMostOnce ==
    \A p \in Players : \A i, j \in 1 .. Len(history[p]) :
        i # j => history[p][i] # history[p][j]

(* Each player's inputs are applied in seq order with no gap: 1, 2, ..., n *)
PerPlayerOrder ==
    \A p \in Players : \A i \in 1 .. Len(history[p]) : history[p][i] = i

InInbox(p, s) == \E i \in 1 .. Len(inbox[Home(p)]) :
                    inbox[Home(p)][i] = [player |-> p, seq |-> s]

IsApplied(p, s) == \E i \in 1 .. Len(history[p]) : history[p][i] = s

(* An acknowledged input is applied and recorded, or pending in the inbox  *)
(* and not yet recorded, so T2 will apply it exactly once.                 *)
AckedAppliedOrPending ==
    \A p \in Players : \A s \in acked[p] :
        IF IsApplied(p, s)
        THEN applied[Home(p)][p] >= s
        ELSE applied[Home(p)][p] < s /\ InInbox(p, s)

(* The database alone, which survives any crash, holds every acknowledged  *)
(* input: recorded as applied, or in the inbox.                            *)
NoAckedLost ==
    \A p \in Players : \A s \in acked[p] :
        applied[Home(p)][p] >= s \/ InInbox(p, s)

(* A region's frame records are 0, 1, ..., frame - 1.                      *)
ContiguousFrames ==
    \A r \in Regions :
        /\ \A i \in 1 .. Len(frameLog[r]) : frameLog[r][i] = i - 1
        /\ dbView[r].frame = Len(frameLog[r])

RECURSIVE Sum(_, _)
Sum(f, S) == IF S = {} THEN 0
             ELSE LET x == CHOOSE y \in S : TRUE IN f[x] + Sum(f, S \ {x})

(* Tree hp + harvested = initial hp per region, and wood in inventories + *)
(* wood on the ground = wood harvested.                                    *)
Conservation ==
    /\ \A r \in Regions : dbView[r].hp + harvested[r] = TreeHp
    /\ Sum(inventory, Players) + Sum([r \in Regions |-> dbView[r].ground], Regions)
         = Sum(harvested, Regions)

(* The current lease holder's loaded cache equals the database.            *)
HolderCacheCoherent ==
    \A q \in Procs, r \in Regions :
        (/\ held[q][r].holds /\ held[q][r].loaded
         /\ lease[r] = [holder |-> q, epoch |-> held[q][r].epoch])
        => held[q][r].cache = dbView[r]

(* A connected client whose cursor is at its region's log head mirrors the *)
(* database's view of that region.                                         *)
ViewMatchesDbWhenQuiet ==
    \A c \in Watchers :
        (edge[c].connected /\ edge[c].cursor = head[Watched(c)])
        => edge[c].mirror = dbView[Watched(c)]

(* Liveness (under FairSpec): every input of every player is applied,      *)
(* exactly once and in order.                                              *)
AllInputsEventuallyApplied ==
    <>(\A p \in Players : history[p] = [i \in 1 .. MaxSeq |-> i])

=============================================================================
