//! DynamoDB single-table store.
