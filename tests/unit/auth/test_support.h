// Helpers shared by the authentication tests and test tools: run a library
// coroutine to completion on a private io_context, and turn the LF line ends
// of the published suites' message files into SMTP's CRLF.
#pragma once

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/use_future.hpp>
#include <string>
#include <string_view>

namespace tern::testing {

template <class T>
T run_sync(boost::asio::awaitable<T> aw) {
  boost::asio::io_context ctx;
  auto fut = boost::asio::co_spawn(ctx, std::move(aw), boost::asio::use_future);
  ctx.run();
  return fut.get();
}

// Bare LF becomes CRLF; existing CRLF pairs stay.
inline std::string to_crlf(std::string_view lf) {
  std::string out;
  out.reserve(lf.size() + lf.size() / 32);
  for (size_t i = 0; i < lf.size(); ++i) {
    if (lf[i] == '\n' && (i == 0 || lf[i - 1] != '\r')) out.push_back('\r');
    out.push_back(lf[i]);
  }
  return out;
}

}  // namespace tern::testing
