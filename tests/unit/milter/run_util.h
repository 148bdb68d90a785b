// Runs one coroutine of the milter client to completion on an io_context,
// for the milter tests (fake, python3-milter and OpenDKIM peers).
#pragma once

#include <optional>
#include <utility>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>

namespace tern::milter::testing {

template <class T>
T run(boost::asio::io_context& io, boost::asio::awaitable<T> work) {
  std::optional<T> result;
  boost::asio::co_spawn(
      io, [&]() -> boost::asio::awaitable<void> { result.emplace(co_await std::move(work)); },
      boost::asio::detached);
  io.restart();
  io.run();
  return std::move(*result);
}

inline void run_void(boost::asio::io_context& io, boost::asio::awaitable<void> work) {
  boost::asio::co_spawn(io, std::move(work), boost::asio::detached);
  io.restart();
  io.run();
}

}  // namespace tern::milter::testing
