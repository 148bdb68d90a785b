# Fuzz target: Authentication-Results / ARC-Authentication-Results parsing (RFC 8601, RFC 8617).
tern_fuzz_target(auth_results SOURCE ${CMAKE_CURRENT_SOURCE_DIR}/auth_results.cc DEPS tern_auth_results)
