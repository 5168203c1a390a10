//! A second daemon on a port already served is refused with a clear error,
//! instead of silently sharing the port through SO_REUSEPORT.

use ringcast::server::Error;

mod common;

#[test]
fn second_engine_on_the_same_port_is_refused() {
    let first = common::start(common::config(2));
    let addr = first.local_addr();
    let mut cfg = common::config(2);
    cfg.listen = addr;
    match ringcast::Engine::start(cfg) {
        Err(e @ Error::AddrInUse(a, _)) => {
            assert_eq!(a, addr);
            let text = e.to_string();
            assert!(
                text.contains(&format!("port {} in use", addr.port())),
                "{text}"
            );
        }
        Err(e) => panic!("expected AddrInUse, got {e}"),
        Ok(_) => panic!("a second engine bound {addr} while the first serves it"),
    }
    // The first engine still serves.
    let mut c = common::connect(addr);
    assert_eq!(c.ping(b"still here").unwrap(), b"still here");
}

#[test]
fn a_port_freed_by_shutdown_binds_again_at_once() {
    let first = common::start(common::config(1));
    let addr = first.local_addr();
    first.shutdown();
    first.wait().unwrap();
    let mut cfg = common::config(1);
    cfg.listen = addr;
    let second = common::start(cfg);
    let mut c = common::connect(second.local_addr());
    assert_eq!(c.ping(b"x").unwrap(), b"x");
}
