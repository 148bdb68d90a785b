# Fuzz target: milter reply packets into the packet reader and reply/negotiation parsers (src/milter).
tern_fuzz_target(milter_reply SOURCE ${CMAKE_CURRENT_SOURCE_DIR}/milter_reply.cc DEPS tern_milter)
