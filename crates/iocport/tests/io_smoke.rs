//! First end-to-end checks of I/O through the port: files, timers, close with I/O in flight, TCP.
use iocport::{CompletionPort, Data, Started};
use std::time::Duration;

#[test]
fn smoke_file_and_nop() {
    let port: CompletionPort<u32> = CompletionPort::new(2);
    port.nop(7, 1).unwrap();
    let p = port.get(Some(Duration::from_secs(5))).unwrap();
    assert_eq!((p.key, p.value), (7, 1));
    let path = std::env::temp_dir().join(format!("iocport-smoke-{}", std::process::id()));
    let f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(&path)
        .unwrap();
    let h = port.associate(f, 3).unwrap();
    let id = h.write_at(b"hello world".to_vec(), 0, 2).unwrap();
    assert!(matches!(id, Started::Pending(_)));
    let p = port.get(Some(Duration::from_secs(5))).unwrap();
    assert_eq!((p.key, p.bytes, p.value), (3, 11, 2));
    h.read_at(vec![0; 5], 6, 3).unwrap();
    let mut p = port.get(Some(Duration::from_secs(5))).unwrap();
    assert_eq!(p.bytes, 5);
    assert_eq!(p.take_buf().unwrap(), b"world");
    port.timer(Duration::from_millis(20), 9, 4).unwrap();
    let p = port.get(Some(Duration::from_secs(5))).unwrap();
    assert!(p.status.is_ok(), "{:?}", p.status);
    assert_eq!(p.key, 9);
    // A recv that never completes is cancelled by close.
    let (a, _b) = std::os::unix::net::UnixStream::pair().unwrap();
    let ha = port.associate(a, 5).unwrap();
    ha.recv(vec![0; 10], 0, 5).unwrap();
    let left = port.close();
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].status.errno(), Some(libc::ECANCELED));
    assert!(matches!(left[0].data, Data::Buf(_)));
    std::fs::remove_file(path).unwrap();
}

#[test]
fn smoke_tcp_echo_workers() {
    use std::io::{Read, Write};
    let port: CompletionPort<u8> = CompletionPort::new(2);
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let lh = port.associate(listener, 0).unwrap();
    lh.accept(0).unwrap();
    let conns = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let workers: Vec<_> = (0..3)
        .map(|_| {
            let port = port.clone();
            let conns = conns.clone();
            std::thread::spawn(move || {
                let mut echoed = 0;
                while let Ok(mut p) = port.get(Some(Duration::from_secs(10))) {
                    match p.value {
                        0 => {
                            let s = p.take_socket().expect("accepted");
                            let h = port.associate(s, 1).unwrap();
                            // Registered before the first recv: its packet may reach another worker.
                            let mut conns = conns.lock().unwrap();
                            conns.push(h);
                            conns.last().unwrap().recv(vec![0; 64], 0, 1).unwrap();
                        }
                        1 => {
                            let n = p.bytes;
                            let mut buf = p.take_buf().unwrap();
                            if n == 0 {
                                continue;
                            }
                            buf.truncate(n);
                            let conns = conns.lock().unwrap();
                            let h = conns.iter().find(|h| h.key() == p.key).unwrap();
                            h.send(buf, 0, 2).unwrap();
                            echoed += 1;
                        }
                        2 => {
                            let conns = conns.lock().unwrap();
                            let h = conns.iter().find(|h| h.key() == p.key).unwrap();
                            h.recv(vec![0; 64], 0, 1).unwrap();
                        }
                        _ => {}
                    }
                }
                echoed
            })
        })
        .collect();
    let mut c = std::net::TcpStream::connect(addr).unwrap();
    for i in 0..100u8 {
        c.write_all(&[i; 16]).unwrap();
        let mut back = [0u8; 16];
        c.read_exact(&mut back).unwrap();
        assert_eq!(back, [i; 16]);
    }
    drop(c);
    std::thread::sleep(Duration::from_millis(50));
    port.close();
    let echoed: usize = workers.into_iter().map(|w| w.join().unwrap()).sum();
    assert_eq!(echoed, 100);
}
