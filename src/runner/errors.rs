//! Errors as text: an error and its causes, as messages, logs and run reports list them.

/// An error and its causes, outermost first, as messages and reports list them. A cause that
/// only repeats the one before it (`file is not a database`, then `Error code 26: file is not
/// a database`) is left out.
pub fn error_chain(error: &(dyn std::error::Error + 'static)) -> Vec<String> {
    let mut chain = vec![error.to_string()];
    let mut cause = error.source();
    while let Some(e) = cause {
        let text = e.to_string();
        let last = chain.last().expect("not empty");
        if !text.contains(last.as_str()) && !last.contains(text.as_str()) {
            chain.push(text);
        }
        cause = e.source();
    }
    chain
}

pub(super) fn error_chain_text(error: &(dyn std::error::Error + 'static)) -> String {
    error_chain(error).join(": ")
}
