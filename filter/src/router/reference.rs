//! A naive reference router (filled in by the differential-test work).
