// Route selection (see route.h): account, then sender domain, then global
// routes, first match wins, "direct" by default.
#include "delivery/route.h"

#include "base/strings.h"

namespace tern::delivery {
namespace {

std::string_view without_trailing_dot(std::string_view domain) {
  if (!domain.empty() && domain.back() == '.') domain.remove_suffix(1);
  return domain;
}

// An empty list matches anything; otherwise one entry must match.
bool any_domain_matches(const std::vector<std::string>& entries, std::string_view domain) {
  if (entries.empty()) return true;
  for (const auto& entry : entries) {
    if (route_domain_matches(entry, domain)) return true;
  }
  return false;
}

const std::vector<Route>* routes_for(const std::map<std::string, std::vector<Route>>& layer, std::string_view key) {
  if (key.empty()) return nullptr;
  auto it = layer.find(to_lower(without_trailing_dot(key)));
  return it == layer.end() ? nullptr : &it->second;
}

Transport direct_transport() {
  Transport direct;
  direct.name = std::string(config::kDirectTransport);
  direct.kind = TransportKind::kDirect;
  return direct;
}

Transport resolve_name(const RouteTable& table, const std::string& name) {
  if (name == config::kDirectTransport) return direct_transport();
  for (const auto& t : table.transports) {
    if (t.name == name) return t;
  }
  Transport missing;
  missing.name = name;
  missing.kind = TransportKind::kFail;
  missing.message = "4.3.5 route names unknown transport " + name;
  return missing;
}

}  // namespace

RouteTable RouteTable::from_config(const config::Config& config) {
  RouteTable table;
  table.transports = config.transports;
  for (const auto& [address, settings] : config.account) {
    if (!settings.routes.empty()) table.account_routes[address] = settings.routes;
  }
  for (const auto& [domain, settings] : config.domain) {
    if (!settings.routes.empty()) table.domain_routes[domain] = settings.routes;
  }
  table.global_routes = config.routes;
  return table;
}

bool route_domain_matches(std::string_view entry, std::string_view domain) {
  domain = without_trailing_dot(domain);
  if (entry.empty() || domain.empty()) return false;
  if (entry.front() == '.') return domain.size() > entry.size() && iends_with(domain, entry);
  return iequals(entry, domain);
}

bool route_matches(const Route& route, std::string_view from_domain, std::string_view to_domain, uint32_t attempts) {
  return attempts >= route.minimum_attempts && any_domain_matches(route.from_domain, from_domain) &&
         any_domain_matches(route.to_domain, to_domain);
}

Transport select_transport(const RouteTable& table, std::string_view account, std::string_view from_domain,
                           std::string_view to_domain, uint32_t attempts) {
  const std::vector<Route>* layers[] = {routes_for(table.account_routes, account),
                                        routes_for(table.domain_routes, from_domain), &table.global_routes};
  for (const auto* routes : layers) {
    if (routes == nullptr) continue;
    for (const auto& route : *routes) {
      if (route_matches(route, from_domain, to_domain, attempts)) return resolve_name(table, route.transport);
    }
  }
  return direct_transport();
}

}  // namespace tern::delivery
