//! The skill host's side of the conversation with agentd: JSON lines on stdin and stdout.

use crate::Error;
use carapace_skills::sandbox_protocol::{FromHost, HttpRequest, HttpResponse, ToHost};
use std::io::{BufRead, Write};

pub struct Channel {
    input: Box<dyn BufRead + Send>,
    output: Box<dyn Write + Send>,
}

impl Channel {
    pub fn new(input: impl BufRead + Send + 'static, output: impl Write + Send + 'static) -> Self {
        Channel {
            input: Box::new(input),
            output: Box::new(output),
        }
    }

    pub fn receive(&mut self) -> Result<ToHost, Error> {
        let mut line = String::new();
        let read = self.input.read_line(&mut line).map_err(Error::Channel)?;
        if read == 0 {
            return Err(Error::Request("stdin ended before a message".into()));
        }
        serde_json::from_str(&line).map_err(|err| Error::Request(err.to_string()))
    }

    pub fn send(&mut self, message: &FromHost) -> Result<(), Error> {
        let mut line =
            serde_json::to_vec(message).map_err(|err| Error::Request(err.to_string()))?;
        line.push(b'\n');
        self.output.write_all(&line).map_err(Error::Channel)?;
        self.output.flush().map_err(Error::Channel)
    }

    /// Asks agentd to make an HTTP request and waits for its answer.
    pub fn fetch(&mut self, request: HttpRequest) -> Result<Result<HttpResponse, String>, Error> {
        self.send(&FromHost::Fetch(request))?;
        match self.receive()? {
            ToHost::Fetched(answer) => Ok(answer),
            _ => Err(Error::Request(
                "a second request arrived while the call waited on HTTP".into(),
            )),
        }
    }
}
