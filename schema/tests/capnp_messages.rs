//! The generated Cap'n Proto code: world messages round-trip through bytes,
//! and the edge protocol's capabilities can be implemented and called.

use capnp::message::{Builder, ReaderOptions};
use capnp::serialize;
use sekai_schema::edge_capnp::{ack, avatar, delta_sink};
use sekai_schema::world_capnp::{action, delta, entity_change, input, EntityType, ItemKind};
use sekai_schema::{EntityId, RegionId, Vec3};
use std::cell::RefCell;
use std::rc::Rc;

fn to_bytes(msg: &Builder<capnp::message::HeapAllocator>) -> Vec<u8> {
    serialize::write_message_to_words(msg)
}

#[test]
fn input_with_every_action_round_trips() {
    for variant in 0..5 {
        let mut msg = Builder::new_default();
        {
            let mut inp = msg.init_root::<input::Builder>();
            inp.set_player(42);
            inp.set_seq(7 + variant);
            let mut act = inp.init_action();
            match variant {
                0 => Vec3::new(1.0, 2.0, 3.0).write_capnp(act.init_move()),
                1 => EntityId(5).write_capnp(act.init_harvest()),
                2 => {
                    let mut b = act.init_build();
                    Vec3::new(-1.0, 0.0, 9.5).write_capnp(b.reborrow().init_position());
                    b.set_kind(EntityType::StructureWall);
                }
                3 => EntityId(u128::MAX).write_capnp(act.init_interact()),
                _ => act.set_idle(()),
            }
        }
        let bytes = to_bytes(&msg);
        let reader = serialize::read_message(&mut &bytes[..], ReaderOptions::new()).unwrap();
        let inp = reader.get_root::<input::Reader>().unwrap();
        assert_eq!(inp.get_player(), 42);
        assert_eq!(inp.get_seq(), 7 + variant);
        match inp.get_action().unwrap().which().unwrap() {
            action::Move(p) => {
                assert_eq!(variant, 0);
                assert_eq!(Vec3::read_capnp(p.unwrap()), Vec3::new(1.0, 2.0, 3.0));
            }
            action::Harvest(id) => {
                assert_eq!(variant, 1);
                assert_eq!(EntityId::read_capnp(id.unwrap()), EntityId(5));
            }
            action::Build(b) => {
                assert_eq!(variant, 2);
                assert_eq!(
                    Vec3::read_capnp(b.get_position().unwrap()),
                    Vec3::new(-1.0, 0.0, 9.5)
                );
                assert_eq!(b.get_kind().unwrap(), EntityType::StructureWall);
            }
            action::Interact(id) => {
                assert_eq!(variant, 3);
                assert_eq!(EntityId::read_capnp(id.unwrap()), EntityId(u128::MAX));
            }
            action::Idle(()) => assert_eq!(variant, 4),
        }
    }
}

fn build_delta(d: delta::Builder<'_>) {
    let mut d = d;
    RegionId::new(-2, 3).write_capnp(d.reborrow().init_region());
    d.set_frame(99);
    let mut changes = d.reborrow().init_changes(2);
    {
        let mut e = changes.reborrow().get(0).init_upsert();
        EntityId(77).write_capnp(e.reborrow().init_id());
        e.set_type(EntityType::PlayerAvatar);
        e.set_hp(100);
        Vec3::new(10.0, 0.0, -5.0).write_capnp(e.reborrow().init_position());
        let mut items = e.reborrow().init_inventory().init_items(1);
        items.reborrow().get(0).set_kind(ItemKind::Wood);
        items.reborrow().get(0).set_count(3);
        e.set_owner(42);
        RegionId::new(-2, 3).write_capnp(e.init_region());
    }
    EntityId(78).write_capnp(changes.get(1).init_remove());
    let mut outcomes = d.init_outcomes(1);
    let mut o = outcomes.reborrow().get(0);
    o.set_player(42);
    o.set_seq(8);
    o.set_accepted(false);
    o.set_reason("out of reach");
}

fn check_delta(d: delta::Reader<'_>) {
    assert_eq!(
        RegionId::read_capnp(d.get_region().unwrap()),
        RegionId::new(-2, 3)
    );
    assert_eq!(d.get_frame(), 99);
    let changes = d.get_changes().unwrap();
    assert_eq!(changes.len(), 2);
    match changes.get(0).which().unwrap() {
        entity_change::Upsert(e) => {
            let e = e.unwrap();
            assert_eq!(EntityId::read_capnp(e.get_id().unwrap()), EntityId(77));
            assert_eq!(e.get_type().unwrap(), EntityType::PlayerAvatar);
            assert_eq!(e.get_hp(), 100);
            let items = e.get_inventory().unwrap().get_items().unwrap();
            assert_eq!(items.get(0).get_kind().unwrap(), ItemKind::Wood);
            assert_eq!(items.get(0).get_count(), 3);
            assert_eq!(e.get_owner(), 42);
        }
        entity_change::Remove(_) => panic!("expected an upsert"),
    }
    match changes.get(1).which().unwrap() {
        entity_change::Remove(id) => assert_eq!(EntityId::read_capnp(id.unwrap()), EntityId(78)),
        entity_change::Upsert(_) => panic!("expected a remove"),
    }
    let o = d.get_outcomes().unwrap().get(0);
    assert_eq!(
        (o.get_player(), o.get_seq(), o.get_accepted()),
        (42, 8, false)
    );
    assert_eq!(o.get_reason().unwrap().to_str().unwrap(), "out of reach");
}

#[test]
fn delta_round_trips() {
    let mut msg = Builder::new_default();
    build_delta(msg.init_root());
    let bytes = to_bytes(&msg);
    let reader = serialize::read_message(&mut &bytes[..], ReaderOptions::new()).unwrap();
    check_delta(reader.get_root().unwrap());
}

/// (versionstamp, frame) of each delta a sink received.
type Received = Rc<RefCell<Vec<(Vec<u8>, u64)>>>;

/// A client-side sink recording what the edge pushed.
#[derive(Default)]
struct Sink {
    deltas: Received,
}

impl delta_sink::Server for Sink {
    async fn delta(
        self: capnp::capability::Rc<Self>,
        params: delta_sink::DeltaParams,
        _: delta_sink::DeltaResults,
    ) -> Result<(), capnp::Error> {
        let p = params.get()?;
        let d = p.get_delta()?;
        check_delta(d);
        self.deltas
            .borrow_mut()
            .push((p.get_versionstamp()?.to_vec(), d.get_frame()));
        Ok(())
    }
}

/// An avatar that accepts only the next seq.
struct Avatar {
    next: RefCell<u64>,
}

impl avatar::Server for Avatar {
    async fn send(
        self: capnp::capability::Rc<Self>,
        params: avatar::SendParams,
        mut results: avatar::SendResults,
    ) -> Result<(), capnp::Error> {
        let seq = params.get()?.get_seq();
        let mut ack = results.get().init_ack();
        let mut next = self.next.borrow_mut();
        if seq == *next {
            *next += 1;
            ack.set_accepted(seq);
        } else {
            ack.set_error(format!("expected seq {}", *next));
        }
        Ok(())
    }
}

#[test]
fn capabilities_can_be_served_and_called() {
    futures::executor::block_on(async {
        let sink = Sink::default();
        let seen = sink.deltas.clone();
        let client: delta_sink::Client = capnp_rpc::new_client(sink);
        let mut req = client.delta_request();
        req.get().set_versionstamp(&[1; 10]);
        build_delta(req.get().init_delta());
        req.send().promise.await.unwrap();
        assert_eq!(*seen.borrow(), vec![(vec![1; 10], 99)]);

        let avatar: avatar::Client = capnp_rpc::new_client(Avatar {
            next: RefCell::new(1),
        });
        for (seq, accepted) in [(1, true), (1, false), (2, true)] {
            let mut req = avatar.send_request();
            req.get().set_seq(seq);
            req.get().init_action().set_idle(());
            let reply = req.send().promise.await.unwrap();
            let ack = reply.get().unwrap().get_ack().unwrap();
            match ack.which().unwrap() {
                ack::Accepted(s) => assert!(accepted && s == seq),
                ack::Error(e) => {
                    assert!(!accepted);
                    assert_eq!(e.unwrap().to_str().unwrap(), "expected seq 2");
                }
            }
        }
    });
}
