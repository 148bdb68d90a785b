# Fuzz target: arbitrary client bytes into an auto-accepting ServerSession.
tern_fuzz_target(smtp_command SOURCE ${CMAKE_CURRENT_SOURCE_DIR}/smtp_command.cc DEPS tern_smtp)
