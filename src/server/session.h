// One SMTP connection: drives the sans-I/O engine over a TCP socket, with
// STARTTLS/implicit TLS, RFC 5321 §4.5.3.2 timeouts enforced by a watchdog,
// recipient/sender checks, SASL and spooling. See server.h for the model.
#pragma once

#include <boost/asio/awaitable.hpp>
#include <boost/asio/ip/tcp.hpp>

#include "config/config.h"
#include "dns/resolver.h"

namespace tern::server {

class Server;

// Runs the session to completion; never throws. `peer` is the client's
// address as accept(2) returned it (no getpeername(2) per connection).
// `resolver` (may be null) belongs to the socket's event-loop thread.
boost::asio::awaitable<void> run_session(Server& server, const config::Listener& listener,
                                         boost::asio::ip::tcp::socket socket, boost::asio::ip::tcp::endpoint peer,
                                         dns::Resolver* resolver);

}  // namespace tern::server

namespace tern::server {
// Called on each event-loop thread at shutdown: idle sessions get 421 now.
void shutdown_sessions_on_this_thread();
}  // namespace tern::server
