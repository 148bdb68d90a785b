// Helpers shared by the authentication tests and test tools: run a library
// coroutine to completion on a private io_context, and mail::to_crlf for the
// LF line ends of the published suites' message files.
#pragma once

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/use_future.hpp>
#include <string>
#include <string_view>

#include "mail/message.h"

namespace tern::testing {

template <class T>
T run_sync(boost::asio::awaitable<T> aw) {
  boost::asio::io_context ctx;
  auto fut = boost::asio::co_spawn(ctx, std::move(aw), boost::asio::use_future);
  ctx.run();
  return fut.get();
}

// The suites' message files use LF line ends (see mail::to_crlf).
using mail::to_crlf;

}  // namespace tern::testing
