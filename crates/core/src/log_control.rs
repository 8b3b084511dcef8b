//! Changing log levels while the runtime runs (Layotto's `/actuator/logger`).
//! Logging is the process's, so the binary that installs the logger
//! registers here how to change it; a library embedding the runtime without
//! doing so answers that levels cannot change.

use std::sync::OnceLock;

/// Sets `level` for the logger `component` (`""` for all).
pub type LogControl = Box<dyn Fn(&str, &str) -> Result<(), String> + Send + Sync>;

static CONTROL: OnceLock<LogControl> = OnceLock::new();

/// Registers the process's log control; false if one already was.
pub fn install(control: LogControl) -> bool {
    CONTROL.set(control).is_ok()
}

pub fn set_level(component: &str, level: &str) -> Result<(), String> {
    let control = CONTROL.get().ok_or("this process's logger cannot change levels at run time")?;
    control(component, level)
}
