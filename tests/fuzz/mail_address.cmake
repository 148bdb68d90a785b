# Fuzz target: RFC 5321 path/mailbox parsing.
tern_fuzz_target(mail_address SOURCE ${CMAKE_CURRENT_SOURCE_DIR}/mail_address.cc DEPS tern_mail)
