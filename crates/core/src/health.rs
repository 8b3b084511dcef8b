use serde::Serialize;

/// Status values as Layotto's actuator spells them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum HealthStatus {
    Up,
    Down,
    Init,
}

/// What a component says about itself when readiness is asked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Health {
    pub status: HealthStatus,
    /// Why the component is not up; empty when it is.
    pub reason: String,
}

impl Health {
    pub fn up() -> Self {
        Self { status: HealthStatus::Up, reason: String::new() }
    }

    pub fn down(reason: impl Into<String>) -> Self {
        Self { status: HealthStatus::Down, reason: reason.into() }
    }

    pub fn init(reason: impl Into<String>) -> Self {
        Self { status: HealthStatus::Init, reason: reason.into() }
    }

    pub fn is_up(&self) -> bool {
        self.status == HealthStatus::Up
    }
}
