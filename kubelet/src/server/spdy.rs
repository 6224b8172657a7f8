//! A minimal SPDY/3.1 client for the runtime's streaming server: the one stream protocol
//! containerd 1.6 offers in which a client can half-close stdin (a DATA frame with FIN), so
//! the process reads EOF. Only what an exec needs: the HTTP upgrade, SYN_STREAM
//! out, SYN_REPLY, DATA, RST_STREAM, PING and GOAWAY in. Header blocks we send are zlib
//! streams without the SPDY dictionary (a receiver only needs it when the stream header's
//! FDICT bit asks); the ones we receive are not read, since a reply's headers carry nothing
//! a session needs.

use bytes::Bytes;
use flate2::{Compress, Compression, FlushCompress};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};

use crate::error::{Error, io};

const VERSION: u16 = 3;
pub const SYN_STREAM: u16 = 1;
pub const SYN_REPLY: u16 = 2;
pub const RST_STREAM: u16 = 3;
pub const PING: u16 = 6;
pub const GOAWAY: u16 = 7;
const FLAG_FIN: u8 = 1;
/// What an I/O error on the connection was doing.
const READING: &str = "reading from the streaming server";
const WRITING: &str = "writing to the streaming server";
/// DATA frames carry at most 2^24-1 bytes; smaller ones keep the server's reads short.
const MAX_DATA: usize = 32 * 1024;

/// One frame read from the server.
#[derive(Debug)]
pub enum Frame {
    Data {
        stream: u32,
        fin: bool,
        data: Bytes,
    },
    Control {
        kind: u16,
        flags: u8,
        payload: Vec<u8>,
    },
}

impl Frame {
    /// The stream a control frame names (SYN_REPLY, RST_STREAM, PING's id).
    pub fn stream(&self) -> u32 {
        match self {
            Frame::Data { stream, .. } => *stream,
            Frame::Control { payload, .. } => payload.get(..4).map_or(0, |b| {
                u32::from_be_bytes([b[0], b[1], b[2], b[3]]) & 0x7fff_ffff
            }),
        }
    }
}

/// The reading side of a SPDY connection.
pub struct Reader(BufReader<OwnedReadHalf>);

impl Reader {
    /// The next frame; None at the end of the connection.
    pub async fn next(&mut self) -> crate::Result<Option<Frame>> {
        let mut head = [0u8; 8];
        match self.0.read_exact(&mut head).await {
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
            Err(e) => return Err(io(READING)(e)),
        }
        let flags = head[4];
        let len = u32::from_be_bytes([0, head[5], head[6], head[7]]) as usize;
        let mut payload = vec![0u8; len];
        self.0.read_exact(&mut payload).await.map_err(io(READING))?;
        let word = u32::from_be_bytes([head[0], head[1], head[2], head[3]]);
        Ok(Some(if word & 0x8000_0000 != 0 {
            Frame::Control {
                kind: (word & 0xffff) as u16,
                flags,
                payload,
            }
        } else {
            Frame::Data {
                stream: word,
                fin: flags & FLAG_FIN != 0,
                data: payload.into(),
            }
        }))
    }
}

/// The writing side: frames are written whole, header blocks through one compression
/// context for the connection's life.
pub struct Writer {
    io: OwnedWriteHalf,
    headers: Compress,
}

impl Writer {
    /// Opens stream `id` (odd: client-initiated) with `headers`.
    pub async fn syn_stream(&mut self, id: u32, headers: &[(&str, &str)]) -> crate::Result<()> {
        let block = self.header_block(headers)?;
        let mut payload = Vec::with_capacity(10 + block.len());
        payload.extend_from_slice(&id.to_be_bytes());
        payload.extend_from_slice(&0u32.to_be_bytes()); // associated-to stream
        payload.extend_from_slice(&[0, 0]); // priority, slot
        payload.extend_from_slice(&block);
        self.control(SYN_STREAM, 0, &payload).await
    }

    /// Sends `data` on `stream`; `fin` half-closes our side after it.
    pub async fn data(&mut self, stream: u32, data: &[u8], fin: bool) -> crate::Result<()> {
        let mut chunks = data.chunks(MAX_DATA).peekable();
        if chunks.peek().is_none() {
            return self.data_frame(stream, &[], fin).await;
        }
        while let Some(chunk) = chunks.next() {
            let last = chunks.peek().is_none();
            self.data_frame(stream, chunk, fin && last).await?;
        }
        Ok(())
    }

    /// Answers the server's PING with its own id.
    pub async fn pong(&mut self, payload: &[u8]) -> crate::Result<()> {
        self.control(PING, 0, payload).await
    }

    async fn data_frame(&mut self, stream: u32, data: &[u8], fin: bool) -> crate::Result<()> {
        let mut frame = Vec::with_capacity(8 + data.len());
        frame.extend_from_slice(&(stream & 0x7fff_ffff).to_be_bytes());
        frame.push(if fin { FLAG_FIN } else { 0 });
        frame.extend_from_slice(&(data.len() as u32).to_be_bytes()[1..]);
        frame.extend_from_slice(data);
        self.io.write_all(&frame).await.map_err(io(WRITING))?;
        Ok(())
    }

    async fn control(&mut self, kind: u16, flags: u8, payload: &[u8]) -> crate::Result<()> {
        let mut frame = Vec::with_capacity(8 + payload.len());
        frame.extend_from_slice(&(0x8000 | VERSION).to_be_bytes());
        frame.extend_from_slice(&kind.to_be_bytes());
        frame.push(flags);
        frame.extend_from_slice(&(payload.len() as u32).to_be_bytes()[1..]);
        frame.extend_from_slice(payload);
        self.io.write_all(&frame).await.map_err(io(WRITING))?;
        Ok(())
    }

    /// The name/value block (lower-case names), compressed and sync-flushed so the server
    /// can read it whole from this frame.
    fn header_block(&mut self, headers: &[(&str, &str)]) -> crate::Result<Vec<u8>> {
        let mut block = Vec::new();
        block.extend_from_slice(&(headers.len() as u32).to_be_bytes());
        for (name, value) in headers {
            for s in [name.to_ascii_lowercase().as_str(), value] {
                block.extend_from_slice(&(s.len() as u32).to_be_bytes());
                block.extend_from_slice(s.as_bytes());
            }
        }
        let mut out = Vec::with_capacity(block.len() + 64);
        let mut consumed = 0;
        loop {
            let before = self.headers.total_in();
            self.headers
                .compress_vec(&block[consumed..], &mut out, FlushCompress::Sync)
                .map_err(|e| Error::Stream(format!("compressing SPDY headers: {e}")))?;
            consumed += (self.headers.total_in() - before) as usize;
            // The flush is complete once it left room in the output.
            if consumed == block.len() && out.len() < out.capacity() {
                return Ok(out);
            }
            out.reserve(256);
        }
    }
}

/// Upgrades an HTTP/1.1 connection to `url` (the runtime's http streaming URL) to SPDY/3.1,
/// asking for the v4 channel protocol (whose error stream carries the final Status).
pub async fn connect(url: &axum::http::Uri) -> crate::Result<(Reader, Writer)> {
    let host = url
        .host()
        .ok_or_else(|| Error::Stream("the streaming URL has no host".into()))?;
    let port = url.port_u16().unwrap_or(80);
    let tcp = TcpStream::connect((host.trim_matches(['[', ']']), port))
        .await
        .map_err(io(format!("dialing {host}:{port}")))?;
    let _ = tcp.set_nodelay(true);
    let (read, mut write) = tcp.into_split();
    let path = url.path_and_query().map_or("/", |p| p.as_str());
    let authority = url.authority().map_or(host, |a| a.as_str());
    let request = format!(
        "POST {path} HTTP/1.1\r\nHost: {authority}\r\nConnection: Upgrade\r\nUpgrade: SPDY/3.1\r\n\
         X-Stream-Protocol-Version: {}\r\nContent-Length: 0\r\n\r\n",
        super::channel::V4
    );
    write
        .write_all(request.as_bytes())
        .await
        .map_err(io(WRITING))?;
    let mut read = BufReader::new(read);
    let mut status = String::new();
    read.read_line(&mut status).await.map_err(io(READING))?;
    let code = status.split_whitespace().nth(1).unwrap_or("");
    let mut length = 0usize;
    loop {
        let mut line = String::new();
        if read.read_line(&mut line).await.map_err(io(READING))? == 0 {
            return Err(Error::Stream(
                "the streaming server closed the connection during the upgrade".into(),
            ));
        }
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        if let Some((name, value)) = line.split_once(':')
            && name.eq_ignore_ascii_case("content-length")
        {
            length = value.trim().parse().unwrap_or(0);
        }
    }
    if code != "101" {
        let mut body = vec![0u8; length.min(64 * 1024)];
        let _ = read.read_exact(&mut body).await;
        return Err(Error::Stream(format!(
            "the streaming server answered {}: {}",
            status.trim(),
            String::from_utf8_lossy(&body).trim()
        )));
    }
    Ok((
        Reader(read),
        Writer {
            io: write,
            headers: Compress::new(Compression::default(), true),
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A header block we write decompresses (no dictionary) to the name/value layout.
    #[tokio::test]
    async fn header_blocks_inflate() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (client, server) = tokio::join!(TcpStream::connect(addr), listener.accept());
        let (_, write) = client.unwrap().into_split();
        let mut w = Writer {
            io: write,
            headers: Compress::new(Compression::default(), true),
        };
        let first = w.header_block(&[("StreamType", "error")]).unwrap();
        let second = w.header_block(&[("streamtype", "stdin")]).unwrap();
        let mut inflate = flate2::Decompress::new(true);
        let mut out = Vec::with_capacity(256);
        for block in [&first, &second] {
            inflate
                .decompress_vec(block, &mut out, flate2::FlushDecompress::Sync)
                .unwrap();
        }
        let mut expected = Vec::new();
        for (n, v) in [("streamtype", "error"), ("streamtype", "stdin")] {
            expected.extend_from_slice(&1u32.to_be_bytes());
            expected.extend_from_slice(&(n.len() as u32).to_be_bytes());
            expected.extend_from_slice(n.as_bytes());
            expected.extend_from_slice(&(v.len() as u32).to_be_bytes());
            expected.extend_from_slice(v.as_bytes());
        }
        assert_eq!(out, expected);
        drop(server);
    }
}
