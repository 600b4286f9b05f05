pub mod relances;
pub mod responses;
pub mod settings;
pub mod threads;
