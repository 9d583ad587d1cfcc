//! hnvswitch.
