// Helpers for the policy tests: run a check coroutine to completion on a
// private io_context, and parse IP literals.
#pragma once

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/use_future.hpp>

#include "base/net.h"

namespace tern::policy::testing {

template <class T>
T run_sync(boost::asio::awaitable<T> aw) {
  boost::asio::io_context ctx;
  auto fut = boost::asio::co_spawn(ctx, std::move(aw), boost::asio::use_future);
  ctx.run();
  return fut.get();
}

inline IpAddress ip(const char* text) {
  return *IpAddress::parse(text);
}

}  // namespace tern::policy::testing
