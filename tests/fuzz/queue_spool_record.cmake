# Fuzzes the spool file scanner and the envelope/state record decoders.
tern_fuzz_target(queue_spool_record SOURCE ${CMAKE_CURRENT_SOURCE_DIR}/queue_spool_record.cc DEPS tern_queue)
