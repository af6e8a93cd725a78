#include "ops/http_server.h"

#include <CivetServer.h>
#include <prometheus/exposer.h>

#include <netdb.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace civicsift {
namespace {

// civetweb calls begin_request without our object, so readiness checks are found by
// the port the request came in on.
std::mutex g_ready_mu;
std::map<int, std::function<bool()>> g_ready_by_port;

// `body` is left out when answering HEAD, whose reply has the headers only.
void reply(mg_connection* conn, bool head, int status, const char* reason, const char* body,
           const char* extra_headers = "") {
  mg_printf(conn,
            "HTTP/1.1 %d %s\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: %zu\r\n"
            "Cache-Control: no-store\r\nConnection: close\r\n%s\r\n%s",
            status, reason, std::strlen(body), extra_headers, head ? "" : body);
}

// Answers /healthz and /readyz itself, and HEAD /metrics (which the exposer does not
// take: a monitor checking with HEAD would see the endpoint missing); everything else
// goes on to the exposer.
int on_begin_request(mg_connection* conn) {
  const mg_request_info* info = mg_get_request_info(conn);
  const char* uri = info->local_uri ? info->local_uri : "";
  const char* method = info->request_method ? info->request_method : "";
  const bool head = std::strcmp(method, "HEAD") == 0;
  const bool probe = std::strcmp(uri, "/healthz") == 0 || std::strcmp(uri, "/readyz") == 0;
  if (head && std::strcmp(uri, "/metrics") == 0) {
    // The exposer's GET Content-Type. No Content-Length: it is known only once the
    // metrics are written, which RFC 9110 (9.3.2) lets a HEAD reply leave out.
    mg_printf(conn,
              "HTTP/1.1 200 OK\r\nContent-Type: text/plain; charset=utf-8\r\n"
              "Cache-Control: no-store\r\nConnection: close\r\n\r\n");
    return 200;
  }
  if (!probe) return 0;
  if (!head && std::strcmp(method, "GET") != 0) {
    reply(conn, false, 405, "Method Not Allowed", "use GET or HEAD\n", "Allow: GET, HEAD\r\n");
    return 405;
  }
  if (std::strcmp(uri, "/healthz") == 0) {
    reply(conn, head, 200, "OK", "ok\n");
    return 200;
  }
  std::function<bool()> ready;
  {
    std::lock_guard lock(g_ready_mu);
    if (auto it = g_ready_by_port.find(info->server_port); it != g_ready_by_port.end()) ready = it->second;
  }
  if (ready && ready()) reply(conn, head, 200, "OK", "ready\n");
  else reply(conn, head, 503, "Service Unavailable", "not ready\n");
  return 200;
}

// Opens and closes one connection to host:port; a wildcard host means this machine.
void knock(std::string host, int port) {
  if (host.size() >= 2 && host.front() == '[') host = host.substr(1, host.size() - 2);
  if (host.empty() || host == "0.0.0.0") host = "127.0.0.1";
  if (host == "::") host = "::1";
  addrinfo hints{};
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* found = nullptr;
  if (getaddrinfo(host.c_str(), std::to_string(port).c_str(), &hints, &found) != 0) return;
  if (const int fd = socket(found->ai_family, found->ai_socktype, found->ai_protocol); fd >= 0) {
    connect(fd, found->ai_addr, found->ai_addrlen);
    close(fd);
  }
  freeaddrinfo(found);
}

}  // namespace

std::variant<std::unique_ptr<HttpServer>, std::string> HttpServer::start(
    const std::string& address, std::shared_ptr<prometheus::Collectable> metrics, std::function<bool()> ready) {
  std::unique_ptr<HttpServer> server(new HttpServer());
  static CivetCallbacks callbacks = [] {
    CivetCallbacks c;
    c.begin_request = on_begin_request;
    return c;
  }();
  try {
    // Connections left open (a port scan, a stuck client) each hold a thread until the
    // request timeout: enough threads, and a timeout under the probes' own (2 s in
    // deploy/k8s), so that they do not stall the probes queued behind them.
    server->exposer_ = std::make_unique<prometheus::Exposer>(
        std::vector<std::string>{"listening_ports", address, "num_threads", "32", "request_timeout_ms", "1000"},
        &callbacks);
  } catch (const std::exception& e) {
    return "metrics endpoint " + address + ": " + e.what();
  }
  const auto ports = server->exposer_->GetListeningPorts();
  if (ports.empty()) return "metrics endpoint " + address + ": not listening";
  server->port_ = ports.front();
  const auto colon = address.rfind(':');
  server->host_ = colon == std::string::npos ? "" : address.substr(0, colon);
  server->bound_address_ = address.substr(0, colon + 1) + std::to_string(server->port_);
  server->metrics_ = std::move(metrics);
  server->exposer_->RegisterCollectable(server->metrics_);
  std::lock_guard lock(g_ready_mu);
  g_ready_by_port[server->port_] = std::move(ready);
  return server;
}

HttpServer::~HttpServer() {
  {
    std::lock_guard lock(g_ready_mu);
    g_ready_by_port.erase(port_);
  }
  // civetweb's stop waits for its listening thread, which sees the stop flag only
  // between polls of its sockets, 2 s apart: every stop of `run` or `demo` ended with
  // a 2 s pause. A connection wakes the poll at once; knocking until the stop is
  // done covers one that lands before the flag is set.
  std::atomic<bool> stopped{false};
  std::thread waker([&] {
    while (!stopped.load()) {
      knock(host_, port_);
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
  });
  exposer_.reset();  // stops serving before the readiness check goes away
  stopped.store(true);
  waker.join();
}

}  // namespace civicsift
