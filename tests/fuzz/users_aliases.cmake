# Fuzz the aliases-file parser and alias expansion (src/users).
tern_fuzz_target(users_aliases SOURCE ${CMAKE_CURRENT_SOURCE_DIR}/users_aliases.cc DEPS tern_users)
