# Fuzz target: arbitrary DATA/BDAT content inside an accepted transaction.
tern_fuzz_target(smtp_data SOURCE ${CMAKE_CURRENT_SOURCE_DIR}/smtp_data.cc DEPS tern_smtp)
