--------------------------- MODULE WorldProtocol ---------------------------
(***************************************************************************)
(* The Sekai world protocol: a refinement of the seed's ExtendedWorldState *)
(* (players, pending inputs, a frame number, a frame log, entities) with   *)
(* what the real system adds:                                              *)
(*                                                                         *)
(*  - regions, each with a lease (holder, epoch);                          *)
(*  - T1 (SubmitInput): behind the edge's input gate, which stores only    *)
(*    the seq after the highest it knows durable, append (player, seq) to  *)
(*    the region's inbox under a versionstamp and raise durable/(player)   *)
(*    with atomic MAX; on commit_unknown_result the input is resent, which *)
(*    may leave a duplicate inbox entry;                                   *)
(*  - Reconnect: the player logs in again; login reports the durable       *)
(*    record as lastSeq, the new session's gate starts there, and the      *)
(*    client resends what it saw no acknowledgement for;                   *)
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
    MaxSeq,          \* inputs per player (its script), and the highest seq
    TreeHp,          \* initial hp of each region's tree
    MaxT1Unknown,    \* T1 commits that may end in commit_unknown_result
    MaxT2Unknown,    \* T2 commits that may end in commit_unknown_result
    MaxCrashes,      \* processor crashes
    MaxTakeovers,    \* lease takeovers (expiry under a dead or partitioned holder)
    MaxDisconnects,  \* edge disconnects
    MaxTrims,        \* change-log entries trimmed
    MaxReconnects    \* player re-logins (a new edge session)

Regions == 0 .. (NumRegions - 1)
Players == 0 .. (NumPlayers - 1)
Watchers == 0 .. (NumWatchers - 1)
Procs == 0 .. (NumProcs - 1)
Seqs == 1 .. MaxSeq
NoProc == -1

Home(p) == p % NumRegions
Watched(c) == c % NumRegions
Owner(r) == r % NumProcs

(* A player's inputs are numbered 1..MaxSeq in the order the player makes  *)
(* them; input i does Kind(i). That number is the input's content: the seq *)
(* it is sent under is another matter (they coincide in the correct        *)
(* protocol, not when a client reuses a seq for a new input).              *)
Script == <<"harvest", "build", "harvest">>
Kind(i) == Script[((i - 1) % Len(Script)) + 1]

Max(a, b) == IF a > b THEN a ELSE b

Outcomes == {"committed", "unknown_applied", "unknown_not_applied"}
Unknown(o) == o # "committed"
Applies(o) == o # "unknown_not_applied"

InitView == [frame |-> 0, hp |-> TreeHp, ground |-> 0]
(* A processor's belief about a region it does not hold. Whenever `loaded` *)
(* is FALSE the cache is InitView, a placeholder: the Rust twin has no     *)
(* cache at all there (None), so both count the same distinct states.      *)
NoHeld == [holds |-> FALSE, epoch |-> 0, loaded |-> FALSE, cache |-> InitView]

VARIABLES
    inbox,      \* inbox[r]: pending [player, seq, input] in versionstamp order
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
    durable,    \* durable[p]: highest seq of p any T1 stored (atomic MAX; 0 = none)
    nextSeq,    \* client: nextSeq[p], the seq p's next new input is sent under
    nextInput,  \* client: nextInput[p], which input p makes next (1 = its first)
    acked,      \* client: acked[p], [seq, input] pairs p saw acknowledged
    retry,      \* client: retry[p], [seq, input] pairs sent, not acknowledged
    gate,       \* edge: gate[p], the session's highest seq known durable
    history,    \* ghost: history[p], [seq, input] pairs of p applied by T2, in order
    edge,       \* edge[c]: [connected, cursor, mirror]
    held,       \* held[q][r]: [holds, epoch, loaded, cache], q's belief about r's lease
    budget      \* fault budgets left

db == <<inbox, applied, dbView, frameLog, changelog, trimmed, head, nextVs,
        lease, inventory, harvested, durable>>
clients == <<nextSeq, nextInput, acked, retry, gate, history>>
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
    /\ durable = [p \in Players |-> 0]
    /\ nextSeq = [p \in Players |-> 1]
    /\ nextInput = [p \in Players |-> 1]
    /\ acked = [p \in Players |-> {}]
    /\ retry = [p \in Players |-> {}]
    /\ gate = [p \in Players |-> 0]
    /\ history = [p \in Players |-> <<>>]
    /\ edge = [c \in Watchers |-> [connected |-> TRUE, cursor |-> 0, mirror |-> InitView]]
    /\ held = [q \in Procs |-> [r \in Regions |->
                 IF Owner(r) = q
                 THEN [holds |-> TRUE, epoch |-> 1, loaded |-> TRUE, cache |-> InitView]
                 ELSE NoHeld]]
    /\ budget = [t1Unknown |-> MaxT1Unknown, t2Unknown |-> MaxT2Unknown,
                 crashes |-> MaxCrashes, takeovers |-> MaxTakeovers,
                 disconnects |-> MaxDisconnects, trims |-> MaxTrims,
                 reconnects |-> MaxReconnects]

-----------------------------------------------------------------------------
(* T1 behind the edge's input gate: sekai_edge::session::input::InputGate  *)
(* and sekai_layer::world::inbox::submit_input.                            *)
(*                                                                         *)
(* The client sends its next input i = nextInput[p] under nextSeq[p], or   *)
(* resends one it saw no acknowledgement for. The session's gate stores    *)
(* only seq = gate + 1; a seq <= gate is acknowledged again without being  *)
(* stored (a resend); a higher seq is refused, which changes nothing, so   *)
(* it is no step here. T1 reads nothing: it appends under a versionstamped *)
(* key and raises durable/(player) with atomic MAX, so appenders never     *)
(* conflict. After an unknown result the input stays unacknowledged and is *)
(* resent (inbox::submit's retry loop, or the client after a reconnect).   *)

SubmitInput(p, i, o) ==
    LET isNew == i = nextInput[p] /\ i <= MaxSeq
        e == IF isNew THEN [seq |-> nextSeq[p], input |-> i]
             ELSE CHOOSE f \in retry[p] : f.input = i
    IN  /\ isNew \/ \E f \in retry[p] : f.input = i
        /\ e.seq <= gate[p] + 1
        /\ nextSeq' = IF isNew THEN [nextSeq EXCEPT ![p] = @ + 1] ELSE nextSeq
        /\ nextInput' = IF isNew THEN [nextInput EXCEPT ![p] = @ + 1] ELSE nextInput
        /\ IF e.seq <= gate[p]
           THEN \* Already durable: acknowledged again, not stored.
                /\ o = "committed"
                /\ acked' = [acked EXCEPT ![p] = @ \cup {e}]
                /\ retry' = [retry EXCEPT ![p] = @ \ {e}]
                /\ UNCHANGED <<inbox, durable, gate, budget>>
           ELSE /\ Unknown(o) => budget.t1Unknown > 0
                /\ budget' = IF Unknown(o) THEN [budget EXCEPT !.t1Unknown = @ - 1] ELSE budget
                /\ inbox' = IF Applies(o)
                            THEN [inbox EXCEPT ![Home(p)] = Append(@,
                                    [player |-> p, seq |-> e.seq, input |-> e.input])]
                            ELSE inbox
                /\ durable' = IF Applies(o) THEN [durable EXCEPT ![p] = Max(@, e.seq)]
                              ELSE durable
                /\ IF Unknown(o)
                   THEN /\ retry' = [retry EXCEPT ![p] = @ \cup {e}]
                        /\ UNCHANGED <<acked, gate>>
                   ELSE /\ retry' = [retry EXCEPT ![p] = @ \ {e}]
                        /\ acked' = [acked EXCEPT ![p] = @ \cup {e}]
                        /\ gate' = [gate EXCEPT ![p] = e.seq]
        /\ UNCHANGED <<applied, dbView, frameLog, changelog, trimmed, head, nextVs,
                       lease, inventory, harvested, history, edge, held>>

(* What login reports as Session.info.lastSeq, and where the new session's *)
(* gate starts: the player's durable record.                               *)
LoginSeq(p) == durable[p]

(* Re-login (sekai_edge's login; the client SDK's reconnect): a new edge   *)
(* session. The client resends every input it saw no acknowledgement for:  *)
(* those at or below lastSeq under their seq (the gate acknowledges them   *)
(* again), the others numbered lastSeq + 1, lastSeq + 2, ... in order, and *)
(* its new inputs continue after them. (With the durable record as         *)
(* lastSeq, the others already have exactly those seqs.)                   *)
Reconnect(p) ==
    LET last == LoginSeq(p)
        rest == {e \in retry[p] : e.seq > last}
        Renumber(e) == [seq |-> last + Cardinality({f \in rest : f.input <= e.input}),
                        input |-> e.input]
    IN  /\ budget.reconnects > 0
        /\ budget' = [budget EXCEPT !.reconnects = @ - 1]
        /\ gate' = [gate EXCEPT ![p] = last]
        /\ retry' = [retry EXCEPT ![p] = (@ \ rest) \cup {Renumber(e) : e \in rest}]
        /\ nextSeq' = [nextSeq EXCEPT ![p] = last + 1 + Cardinality(rest)]
        /\ UNCHANGED <<db, nextInput, acked, history, edge, held>>

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
    IF Kind(e.input) = "harvest" /\ st.view.hp > 0
    THEN [st EXCEPT !.view.hp = @ - 1, !.inv[e.player] = @ + 1, !.harvested = @ + 1]
    ELSE IF Kind(e.input) = "build" /\ st.inv[e.player] > 0
         THEN [st EXCEPT !.inv[e.player] = @ - 1, !.view.ground = @ + 1, !.built = @ + 1]
         ELSE st

ApplyStep(st, e) ==
    [Effect(st, e) EXCEPT !.hist[e.player] = Append(@, [seq |-> e.seq, input |-> e.input])]

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
                    /\ UNCHANGED <<trimmed, lease, durable, nextSeq, nextInput, acked, retry,
                                   gate, edge>>

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
                   inventory, harvested, durable, clients, edge, budget>>

(* Another holder's lease expired (it is dead or partitioned) and q takes  *)
(* it; the old holder may still believe it holds the lease.                *)
Takeover(q, r) ==
    /\ budget.takeovers > 0
    /\ ~held[q][r].holds
    /\ lease[r].holder \notin {NoProc, q}
    /\ Grant(q, r)
    /\ budget' = [budget EXCEPT !.takeovers = @ - 1]
    /\ UNCHANGED <<inbox, applied, dbView, frameLog, changelog, trimmed, head, nextVs,
                   inventory, harvested, durable, clients, edge>>

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
                   harvested, durable, clients, edge, held>>

-----------------------------------------------------------------------------

Next ==
    \/ \E p \in Players, i \in Seqs, o \in Outcomes : SubmitInput(p, i, o)
    \/ \E p \in Players : Reconnect(p)
    \/ \E q \in Procs, r \in Regions, o \in Outcomes : RunFrame(q, r, o)
    \/ \E q \in Procs, r \in Regions : Acquire(q, r) \/ Takeover(q, r) \/ Reload(q, r)
    \/ \E q \in Procs : Crash(q)
    \/ \E c \in Watchers : Deliver(c) \/ Disconnect(c) \/ Resume(c)
    \/ \E r \in Regions : Trim(r)

Spec == Init /\ [][Next]_vars

(* Fairness for the liveness property: clients keep sending and resending, *)
(* processors keep running frames, reloading and re-acquiring their own    *)
(* leases.                                                                 *)
Fairness ==
    /\ \A p \in Players, i \in Seqs : WF_vars(SubmitInput(p, i, "committed"))
    /\ \A q \in Procs, r \in Regions :
         /\ WF_vars(RunFrame(q, r, "committed"))
         /\ WF_vars(Reload(q, r))
         /\ WF_vars(Acquire(q, r))

FairSpec == Spec /\ Fairness

-----------------------------------------------------------------------------
(* Invariants. The names match the stateright properties of sekai-specs.   *)

View == [frame : Nat, hp : 0 .. TreeHp, ground : 0 .. (NumRegions * TreeHp)]
Entry == [player : Players, seq : Seqs, input : Seqs]
Numbered == [seq : Seqs, input : Seqs]   \* an input and the seq it was sent under
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
         /\ durable[p] \in 0 .. MaxSeq
         /\ nextSeq[p] \in 1 .. (MaxSeq + 1)
         /\ nextInput[p] \in 1 .. (MaxSeq + 1)
         /\ acked[p] \cup retry[p] \subseteq [seq : Seqs, input : 1 .. (nextInput[p] - 1)]
         /\ gate[p] \in 0 .. MaxSeq
         /\ inventory[p] \in 0 .. (NumRegions * TreeHp)
         /\ history[p] \in Seq(Numbered)
    /\ \A c \in Watchers :
         /\ edge[c].connected \in BOOLEAN
         /\ edge[c].cursor \in 0 .. head[Watched(c)]
    /\ \A q \in Procs, r \in Regions :
         held[q][r].holds => held[q][r].epoch <= lease[r].epoch

(* No (player, seq) is applied twice.                                      *)
AtMostOnce ==
    \A p \in Players : \A i, j \in 1 .. Len(history[p]) :
        i # j => history[p][i].seq # history[p][j].seq

(* Each player's inputs are applied in seq order with no gap: 1, 2, ..., n *)
PerPlayerOrder ==
    \A p \in Players : \A i \in 1 .. Len(history[p]) : history[p][i].seq = i

(* Input e = [seq, input] of player p, with that content, is pending.      *)
InInbox(p, e) == \E i \in 1 .. Len(inbox[Home(p)]) :
                    inbox[Home(p)][i] = [player |-> p, seq |-> e.seq, input |-> e.input]

(* Input e of player p was applied, under that seq and with that content.  *)
IsApplied(p, e) == \E i \in 1 .. Len(history[p]) : history[p][i] = e

(* An acknowledged input is applied, with the acknowledged content, and    *)
(* recorded, or pending in the inbox and not yet recorded, so T2 will      *)
(* apply it exactly once.                                                  *)
AckedAppliedOrPending ==
    \A p \in Players : \A e \in acked[p] :
        IF IsApplied(p, e)
        THEN applied[Home(p)][p] >= e.seq
        ELSE applied[Home(p)][p] < e.seq /\ InInbox(p, e)

(* The database alone, which survives any crash, holds every acknowledged  *)
(* input: recorded as applied, or in the inbox.                            *)
NoAckedLost ==
    \A p \in Players : \A e \in acked[p] :
        applied[Home(p)][p] >= e.seq \/ InInbox(p, e)

(* T2 never leaves an input behind a gap: every pending input is its       *)
(* player's next seq or a duplicate, because the gate stores only gate + 1 *)
(* and starts at the durable record. (T2 still keeps gapped inputs.)       *)
NoGap == \A r \in Regions : Plan(r).keep = <<>>

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
(* exactly once, in order, under its own seq.                              *)
AllInputsEventuallyApplied ==
    <>(\A p \in Players : history[p] = [i \in 1 .. MaxSeq |-> [seq |-> i, input |-> i]])

=============================================================================
