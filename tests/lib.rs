//! plinth's integration tests live in `all/`: one binary, a module per
//! journey. This library is empty.
