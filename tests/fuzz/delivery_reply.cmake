# Fuzz target: SMTP/LMTP server replies into the client-side reply reader (src/delivery).
tern_fuzz_target(delivery_reply SOURCE ${CMAKE_CURRENT_SOURCE_DIR}/delivery_reply.cc DEPS tern_delivery)
