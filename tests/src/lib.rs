//! The whole-system test harness of Carapace lives here: it builds test images, boots them
//! and reads their console lines.
