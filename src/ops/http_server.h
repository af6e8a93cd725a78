// ops: the HTTP endpoint of a running civicsift: /metrics (prometheus-cpp's pull
// exposer), /healthz (the process answers) and /readyz (ready to do its work).
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <variant>

#include <prometheus/collectable.h>

namespace prometheus {
class Exposer;
}

namespace civicsift {

class HttpServer {
 public:
  // `address` is host:port ("0.0.0.0:9464", "127.0.0.1:0" for any free port).
  // `ready` is asked at each /readyz; false answers 503.
  static std::variant<std::unique_ptr<HttpServer>, std::string> start(const std::string& address,
                                                                       std::shared_ptr<prometheus::Collectable> metrics,
                                                                       std::function<bool()> ready);
  ~HttpServer();
  int port() const { return port_; }
  // host:port as bound: the port the kernel chose when `address` asked for 0.
  const std::string& bound_address() const { return bound_address_; }

 private:
  HttpServer() = default;
  std::unique_ptr<prometheus::Exposer> exposer_;
  std::shared_ptr<prometheus::Collectable> metrics_;
  int port_ = 0;
  std::string host_;  // as given; empty when `address` named only a port
  std::string bound_address_;
};

}  // namespace civicsift
