//! The accept loop shared by the tests' servers ([`crate::common::upstream`],
//! [`crate::common::idp`]): listen on 127.0.0.1 port 0, serve each connection on its own
//! thread, stop when dropped.

use std::io::{self, BufRead, BufReader};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

pub struct LoopbackServer {
    port: u16,
    stop: Arc<AtomicBool>,
    accept_thread: Option<thread::JoinHandle<()>>,
}

impl LoopbackServer {
    /// Starts accepting; `serve` gets every connection, on a thread of its own.
    pub fn start<F>(serve: F) -> std::io::Result<LoopbackServer>
    where
        F: Fn(TcpStream) + Send + Sync + 'static,
    {
        let listener = TcpListener::bind(("127.0.0.1", 0))?;
        let port = listener.local_addr()?.port();
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = stop.clone();
        let serve = Arc::new(serve);
        let accept_thread = thread::spawn(move || {
            for conn in listener.incoming() {
                if stopping.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(conn) = conn else { continue };
                let serve = serve.clone();
                thread::spawn(move || serve(conn));
            }
        });
        Ok(LoopbackServer {
            port,
            stop,
            accept_thread: Some(accept_thread),
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }
}

impl Drop for LoopbackServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
        if let Some(t) = self.accept_thread.take() {
            let _ = t.join();
        }
    }
}

/// One keep-alive connection as the servers read it: a buffered reader and a writer.
pub struct Connection {
    pub reader: BufReader<TcpStream>,
    pub writer: TcpStream,
}

impl Connection {
    pub fn new(conn: TcpStream) -> io::Result<Connection> {
        conn.set_read_timeout(Some(Duration::from_secs(60)))?;
        let writer = conn.try_clone()?;
        Ok(Connection {
            reader: BufReader::new(conn),
            writer,
        })
    }
}

/// The next request line, or `None` when the peer closed the connection.
pub fn next_request_line(reader: &mut BufReader<TcpStream>) -> io::Result<Option<String>> {
    read_line_lossy(reader)
}

/// One line as text, whatever its bytes (a header value may carry any byte, and the test
/// servers must not drop the connection over it); `None` at the end of the stream.
pub fn read_line_lossy(reader: &mut BufReader<TcpStream>) -> io::Result<Option<String>> {
    let mut line = Vec::new();
    if reader.read_until(b'\n', &mut line)? == 0 {
        return Ok(None);
    }
    Ok(Some(String::from_utf8_lossy(&line).into_owned()))
}
