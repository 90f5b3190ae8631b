//! The sockmap engine (`proxy_engine: sockmap`): a connection's two
//! sockets go into a BPF socket map whose `sk_skb` verdict program sends
//! what each receives out of the other, in the kernel. The daemon's task
//! only watches for each side's FIN or error, passes a FIN on once every
//! byte before it has been written, counts bytes from the program's
//! counters, and enforces the idle timeout. Path: `load` (once) -> `link`
//! (per connection) -> `relay` (until both directions end).
pub mod link;
pub mod load;
pub mod relay;
mod sockopt;

#[cfg(test)]
mod tests {
    use tokio::{
        io::{AsyncReadExt as _, AsyncWriteExt as _},
        net::{TcpListener, TcpStream},
    };

    use super::{link::Link, load::Relay, sockopt::written};

    /// Two loopback connections: (client, the proxy's end of it), and
    /// (the proxy's end toward the backend, backend).
    async fn two_pairs() -> [TcpStream; 4] {
        let mut out = Vec::new();
        for _ in 0..2 {
            let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
            let a = TcpStream::connect(l.local_addr().expect("addr"))
                .await
                .expect("connect");
            let (b, _) = l.accept().await.expect("accept");
            out.extend([a, b]);
        }
        let [client, near, far, backend] = out.try_into().expect("four");
        [client, near, far, backend]
    }

    /// Bytes queued before the link (the kick's job) and after it cross in
    /// both directions, and the program counts each direction exactly.
    /// Loads a BPF program: needs root, like the XDP packet tests.
    #[tokio::test]
    async fn a_linked_connection_is_relayed_in_the_kernel_and_counted() {
        let relay = Relay::load().expect("load the relay (needs root)");
        let [mut client, near, far, mut backend] = two_pairs().await;
        client.write_all(b"early ").await.expect("write");
        // Let it land in `near`'s receive queue before the link.
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        let link = Link::new(&relay, &near, &far).await.expect("link");
        client.write_all(b"late").await.expect("write");
        let mut got = [0u8; 10];
        backend.read_exact(&mut got).await.expect("backend reads");
        assert_eq!(&got, b"early late");
        backend.write_all(b"answer").await.expect("write");
        let mut back = [0u8; 6];
        client.read_exact(&mut back).await.expect("client reads");
        assert_eq!(&back, b"answer");
        assert_eq!(link.moved().expect("counters"), [10, 6]);
        // What the drain check compares: all of it is in the other socket.
        assert_eq!(written(&far).expect("info"), link.written_before[0] + 10);
    }

    /// The drain check relies on this figure being exactly what was
    /// written, read or not by the peer.
    #[tokio::test]
    async fn written_counts_every_byte_put_into_the_socket() {
        let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let mut a = TcpStream::connect(l.local_addr().expect("addr"))
            .await
            .expect("connect");
        let (mut b, _) = l.accept().await.expect("accept");
        assert_eq!(written(&a).expect("info"), 0);
        a.write_all(&vec![7u8; 100_000]).await.expect("write");
        // Part of it may still be queued unsent; all of it counts.
        assert_eq!(written(&a).expect("info"), 100_000);
        let mut got = vec![0u8; 100_000];
        b.read_exact(&mut got).await.expect("read");
        assert_eq!(written(&a).expect("info"), 100_000);
        assert_eq!(written(&b).expect("info"), 0);
    }

    /// A client that sent its FIN before the link cannot enter a socket
    /// map: the link is undone and both sockets read as plain sockets again
    /// (what the splice fallback needs), with nothing lost or moved.
    #[tokio::test]
    async fn a_client_that_already_closed_is_left_to_the_splice() {
        let relay = Relay::load().expect("load the relay (needs root)");
        let [mut client, mut near, mut far, mut backend] = two_pairs().await;
        client.write_all(b"ask").await.expect("write");
        client.shutdown().await.expect("fin");
        backend.write_all(b"greeting").await.expect("write");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        let err = Link::new(&relay, &near, &far)
            .await
            .err()
            .expect("a closing client cannot be linked");
        assert!(
            matches!(&err, super::link::LinkError::Unlinked(e) if e.raw_os_error() == Some(libc::EOPNOTSUPP)),
            "{err}"
        );
        let mut asked = Vec::new();
        near.read_to_end(&mut asked).await.expect("read");
        assert_eq!(asked, b"ask");
        let mut greeting = [0u8; 8];
        far.read_exact(&mut greeting).await.expect("read");
        assert_eq!(&greeting, b"greeting");
    }
}
