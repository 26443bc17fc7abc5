//! `carapace-skillhost`: runs the one skill call it reads on stdin (see the library), or, as
//! `carapace-skillhost compile COMPONENT COMPILED`, compiles a component for later calls.

use std::io::BufReader;
use std::path::PathBuf;
use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<PathBuf> = std::env::args_os().skip(1).map(PathBuf::from).collect();
    let result = match args.as_slice() {
        [] => carapace_skillhost::serve_one(carapace_skillhost::Channel::new(
            BufReader::new(std::io::stdin()),
            std::io::stdout(),
        )),
        [step, component, compiled] if step.as_os_str() == carapace_skillhost::COMPILE_ARG => {
            carapace_skillhost::compile_step(component, compiled)
        }
        _ => {
            eprintln!(
                "usage: carapace-skillhost (a call as JSON on stdin)\n       carapace-skillhost compile COMPONENT COMPILED"
            );
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("carapace-skillhost: {err}");
            ExitCode::FAILURE
        }
    }
}
