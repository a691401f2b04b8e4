//! Where a panic happened, for the cause recorded when it is caught.
//!
//! A caught panic's payload says what went wrong but not where. A panic hook, installed once
//! when the first enabled recorder is built, notes the location (and, when the user enabled
//! backtraces with `RUST_BACKTRACE` or `RUST_LIB_BACKTRACE`, a backtrace) in a thread-local
//! slot, then runs the hook that was installed before it, so panic messages print as usual.
//! The code that records the panic takes the note on the same thread. Nothing runs unless a
//! thread panics.

use std::backtrace::{Backtrace, BacktraceStatus};
use std::cell::RefCell;
use std::sync::Once;

use crate::document::{Exception, StackFrame};

/// What the hook noted about the last panic on this thread.
struct Note {
    message: Option<String>,
    file: String,
    line: u32,
    backtrace: Option<Backtrace>,
}

thread_local! {
    static LAST: RefCell<Option<Note>> = const { RefCell::new(None) };
}

/// Installs the hook once per process.
pub(crate) fn install_hook() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if let Some(location) = info.location() {
                let backtrace = Backtrace::capture();
                let note = Note {
                    message: info.payload_as_str().map(str::to_string),
                    file: location.file().to_string(),
                    line: location.line(),
                    backtrace: (backtrace.status() == BacktraceStatus::Captured)
                        .then_some(backtrace),
                };
                let _ = LAST.try_with(|l| {
                    if let Ok(mut l) = l.try_borrow_mut() {
                        *l = Some(note);
                    }
                });
            }
            previous(info);
        }));
    });
}

/// Adds the frames noted for the panic being recorded on this thread to `exception`: the
/// panic's location first, then the backtrace's frames, at most `max` in all. `message` is
/// the payload's text when known: a note for another panic is not used.
pub(crate) fn add_frames(exception: &mut Exception, message: Option<&str>, max: usize) {
    if max == 0 {
        return;
    }
    let Some(note) = LAST.try_with(|l| l.borrow_mut().take()).ok().flatten() else {
        return;
    };
    if message.is_some() && note.message.is_some() && message != note.message.as_deref() {
        return;
    }
    exception
        .stack
        .push(StackFrame::new(Some(note.file), Some(note.line), None));
    if let Some(backtrace) = &note.backtrace {
        let done = std::mem::take(exception);
        *exception = done.with_backtrace(backtrace, max);
    }
}
