//! In-process engine tests (a fake world).
