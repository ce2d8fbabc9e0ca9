//! The rehearsal container's one way out: a TCP relay octoup runs on the Docker host, bound
//! to the internal network's gateway address, forwarding to the SQL Server and nowhere
//! else. The container's network is `--internal` (no route off the host), so with the
//! relay it reaches the SQL Server and nothing of production.

use std::net::{IpAddr, SocketAddr};

use tokio::net::{TcpListener, TcpStream};
use tokio::task::{JoinHandle, JoinSet};

/// A running relay; dropping it closes the listener and every connection.
pub(crate) struct Relay {
    pub addr: SocketAddr,
    task: JoinHandle<()>,
}

impl Relay {
    /// Listens on `listen` (a free port) and forwards each connection to `upstream`
    /// (`host:port`, resolved per connection so a DNS change is followed).
    pub async fn start(listen: IpAddr, upstream: String) -> std::io::Result<Relay> {
        let listener = TcpListener::bind((listen, 0)).await?;
        let addr = listener.local_addr()?;
        let task = tokio::spawn(async move {
            // Owned here, so aborting the accept loop drops every connection with it.
            let mut connections = JoinSet::new();
            loop {
                tokio::select! {
                    accepted = listener.accept() => {
                        let Ok((mut inbound, _)) = accepted else { continue };
                        let upstream = upstream.clone();
                        connections.spawn(async move {
                            if let Ok(mut outbound) = TcpStream::connect(upstream.as_str()).await {
                                let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                            }
                        });
                    }
                    Some(_) = connections.join_next(), if !connections.is_empty() => {}
                }
            }
        });
        Ok(Relay { addr, task })
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.task.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn it_forwards_both_ways_and_stops_when_dropped() {
        let upstream = TcpListener::bind(("127.0.0.1", 0)).await.unwrap();
        let target = upstream.local_addr().unwrap().to_string();
        tokio::spawn(async move {
            let (mut s, _) = upstream.accept().await.unwrap();
            let mut buf = [0u8; 4];
            s.read_exact(&mut buf).await.unwrap();
            s.write_all(&buf.map(|b| b.to_ascii_uppercase()))
                .await
                .unwrap();
        });
        let relay = Relay::start("127.0.0.1".parse().unwrap(), target)
            .await
            .unwrap();
        let mut c = TcpStream::connect(relay.addr).await.unwrap();
        c.write_all(b"ping").await.unwrap();
        let mut back = [0u8; 4];
        c.read_exact(&mut back).await.unwrap();
        assert_eq!(&back, b"PING");
        let addr = relay.addr;
        drop(relay);
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        assert!(
            TcpStream::connect(addr).await.is_err(),
            "the relay still listens"
        );
    }
}
