//! Local stand-ins and set-up shared by `make dev` and the black-box tests: AWS clients
//! for moto, table and topic creation from the code's own definition, the marketplace stub.

pub mod consistency;
pub mod marketplace_stub;
pub mod proxy;
pub mod stack;
