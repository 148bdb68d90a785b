// Maildir delivery (the format of qmail's maildir(5), as used by Dovecot and
// Courier): each message is written under tmp/ with a unique name, fsync'ed,
// then hard-linked into new/ and the directory fsync'ed, so a crash leaves
// either no message or a complete one. The Maildir location comes from a
// template such as "/var/mail/{domain}/{user}"; recipient-derived parts are
// validated so an address can never escape the mail root. Stored messages
// get Return-Path and Delivered-To headers (RFC 5321 §4.4) and LF endings.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "base/result.h"
#include "delivery/local_delivery.h"

namespace tern::delivery {

struct MaildirOptions {
  // Absolute path with placeholders, expanded per recipient:
  //   {domain}  mailbox domain, lower-cased
  //   {user}    local part without +detail, lower-cased
  //   {local}   local part including +detail, case preserved
  // The expansion is the Maildir itself (tmp/, new/, cur/ inside).
  std::string path_template;
  // Host name used in unique file names; gethostname() when empty.
  std::string hostname;
  // Deliver "user+detail@" into the Maildir++ subfolder ".detail" when that
  // folder already exists (never created on demand); else into the INBOX.
  bool detail_folder = false;
};

// Checks a template: absolute, known placeholders only, balanced braces.
Status validate_maildir_template(std::string_view path_template);

// Expands the template for one recipient. A user/domain that is empty, "." or
// "..", starts with '.', or contains '/', NUL or control characters cannot be
// a directory name safely: 550 5.1.1 (permanent). A bad template: 451 4.3.5.
Result<std::string> expand_maildir_path(std::string_view path_template, const LocalDelivery& delivery);

class MaildirDeliverer {
 public:
  using Options = MaildirOptions;
  explicit MaildirDeliverer(Options options);

  // Delivers `content` (RFC 5322 text, CRLF line endings) to one recipient
  // and returns the path of the new file in new/. Errors:
  //   550 5.1.1 recipient unusable as a directory name (permanent)
  //   452 4.2.2 quota exceeded (EDQUOT), 452 4.3.1 disk full (ENOSPC)
  //   451 4.3.5 bad template, 451 4.3.0 any other I/O failure (EACCES, EIO...)
  Result<std::string> deliver(const LocalDelivery& delivery, std::string_view content);

  // Same for several recipients of one message, amortising the syncs: all
  // tmp files are written, then made durable (one syncfs(2) per file system
  // holding several of them, else fsync(2)), then linked into new/, then
  // each distinct new/ directory is fsync'ed once. Results in input order.
  std::vector<Result<std::string>> deliver_batch(const std::vector<LocalDelivery>& deliveries,
                                                 std::string_view content);

  // The general form: deliveries of several messages in one batch (the
  // delivery workers batch every message they lease), so that a burst of
  // N messages costs one sync round instead of N. `contents[i]` is the
  // message for `deliveries[i]`; equal views share one LF conversion.
  std::vector<Result<std::string>> deliver_many(const std::vector<LocalDelivery>& deliveries,
                                                const std::vector<std::string_view>& contents);

  // "<seconds>.M<usec>P<pid>Q<counter>.<host>" with '/' and ':' in the host
  // escaped as "\057" and "\072" (maildir(5) naming). Unique per process.
  std::string unique_name();

 private:
  struct Pending;
  // Resolves the target Maildir (including the detail folder) and creates it.
  Result<std::string> prepare_maildir(const LocalDelivery& delivery);
  // Writes headers + LF-converted body to a fresh file in tmp/ (not synced;
  // unnamed, O_TMPFILE, when possible).
  Status write_tmp(Pending& pending, std::string_view lf_content);
  // Links the tmp file into new/ (rename when links are unsupported),
  // removes its tmp/ name if it has one. The file must still be open.
  Status publish(Pending& pending);

  Options options_;
  std::string escaped_hostname_;
  Status template_status_;
  long pid_ = 0;  // for unique names (tern does not fork after start-up)
};

}  // namespace tern::delivery
