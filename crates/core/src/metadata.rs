use std::collections::HashMap;

/// Component and request metadata: string keys to string values, as on the
/// wire. Components read it into typed settings ([`crate::settings`]).
pub type Metadata = HashMap<String, String>;
