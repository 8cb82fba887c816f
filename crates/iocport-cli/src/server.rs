//! What the command's servers and copier share in driving their port.

use iocport::{OpError, Packet, Started};

/// Deals with the result of starting an operation: a packet that is there at once (the operation
/// completed inline on a skip-on-success handle) goes to `ready`, to be served like one from `get`;
/// an operation refused only because the port is closing is dropped with its value.
///
/// # Errors
///
/// Why the operation could not start (which handle, which operation, what was wrong).
pub(crate) fn started<T, B>(
    r: Result<Started<T, B>, OpError<T, B>>,
    ready: &mut Vec<Packet<T, B>>,
) -> Result<(), String> {
    match r {
        Ok(Started::Pending(_)) => Ok(()),
        Ok(Started::Done(packet)) => {
            ready.push(packet);
            Ok(())
        }
        Err(e) if matches!(e.error, iocport::Error::Closed) => Ok(()),
        Err(e) => Err(e.to_string()),
    }
}
