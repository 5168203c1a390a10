use ringcast::client::Client;
use ringcast::{Config, Engine};
use std::time::Duration;

#[test]
fn smoke() {
    let cfg = Config { listen: "127.0.0.1:0".parse().unwrap(), cores: 2, ..Config::default() };
    let engine = Engine::start(cfg).unwrap();
    eprintln!("{}", engine.describe());
    let addr = engine.local_addr();
    let mut subs: Vec<Client> = (0..20).map(|_| Client::connect(addr).unwrap()).collect();
    for s in subs.iter_mut() {
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        for t in ["a", "b", "c"] {
            let ack = s.subscribe(t).unwrap();
            assert_eq!(ack.next_seq, 1);
        }
    }
    let mut p = Client::connect(addr).unwrap();
    for i in 0..100u32 {
        for t in ["a", "b", "c"] {
            p.publish(t, &i.to_le_bytes()).unwrap();
        }
    }
    p.ping(b"x").unwrap();
    for s in subs.iter_mut() {
        let mut next = std::collections::HashMap::new();
        for _ in 0..300 {
            let m = s.next_message().unwrap();
            let e = next.entry(m.topic.clone()).or_insert(1u64);
            assert_eq!(m.seq, *e);
            *e += 1;
        }
    }
    eprintln!("{:?}", engine.stats());
    engine.shutdown();
    engine.wait().unwrap();
}
