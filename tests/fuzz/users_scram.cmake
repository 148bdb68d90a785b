# Fuzz the SCRAM-SHA-256 (and PLAIN/LOGIN) SASL server state machines (src/users).
tern_fuzz_target(users_scram SOURCE ${CMAKE_CURRENT_SOURCE_DIR}/users_scram.cc DEPS tern_users)
