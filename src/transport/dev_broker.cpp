#include "transport/dev_broker.h"

#include <arpa/inet.h>
#include <fmt/format.h>
#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cstring>
#include <list>
#include <system_error>
#include <thread>

namespace civicsift {
namespace {

int connect_to(const std::string& host_port) {
  const auto colon = host_port.rfind(':');
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(std::stoi(host_port.substr(colon + 1))));
  inet_pton(AF_INET, host_port.substr(0, colon).c_str(), &addr.sin_addr);
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    ::close(fd);
    return -1;
  }
  return fd;
}

// Copies bytes both ways until either side closes or `stop` is set.
void pump(int a, int b, const std::atomic<bool>& stop) {
  char buf[64 * 1024];
  pollfd fds[2] = {{a, POLLIN, 0}, {b, POLLIN, 0}};
  while (!stop.load()) {
    if (::poll(fds, 2, 200) < 0) break;
    for (int i = 0; i < 2; ++i) {
      if (!(fds[i].revents & (POLLIN | POLLHUP | POLLERR))) continue;
      const ssize_t n = ::read(fds[i].fd, buf, sizeof buf);
      if (n <= 0) return;
      for (ssize_t off = 0; off < n;) {
        const ssize_t w = ::write(fds[1 - i].fd, buf + off, static_cast<size_t>(n - off));
        if (w <= 0) return;
        off += w;
      }
    }
  }
}

}  // namespace

struct DevBroker::Impl {
  rd_kafka_t* handle = nullptr;
  rd_kafka_mock_cluster_t* cluster = nullptr;
  int listen_fd = -1;
  std::atomic<bool> stop{false};
  std::thread acceptor;
  struct Connection {
    std::atomic<bool> done{false};
    std::thread pump;
  };
  // The acceptor's alone until ~Impl has joined it.
  std::list<Connection> connections;

  ~Impl() {
    stop.store(true);
    if (listen_fd >= 0) ::shutdown(listen_fd, SHUT_RDWR);
    if (acceptor.joinable()) acceptor.join();
    for (auto& c : connections) c.pump.join();
    if (listen_fd >= 0) ::close(listen_fd);
    if (cluster) rd_kafka_mock_cluster_destroy(cluster);
    if (handle) rd_kafka_destroy(handle);
  }

  void accept_loop(std::string target) {
    while (!stop.load()) {
      pollfd p{listen_fd, POLLIN, 0};
      if (::poll(&p, 1, 200) <= 0) continue;
      const int client = ::accept4(listen_fd, nullptr, nullptr, SOCK_CLOEXEC);
      if (client < 0) continue;
      // Connections that ended are joined now, not at exit: a client that reconnects
      // all day must not pile up threads.
      connections.remove_if([](Connection& c) {
        if (!c.done.load()) return false;
        c.pump.join();
        return true;
      });
      Connection& connection = connections.emplace_back();
      try {
        connection.pump = std::thread([this, client, target, &connection] {
          const int upstream = connect_to(target);
          if (upstream >= 0) {
            pump(client, upstream, stop);
            ::close(upstream);
          }
          ::close(client);
          connection.done.store(true);
        });
      } catch (const std::system_error&) {  // out of threads: this client is turned away
        ::close(client);
        connections.pop_back();
      }
    }
  }
};

DevBroker::DevBroker(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
DevBroker::~DevBroker() = default;
rd_kafka_mock_cluster_t* DevBroker::cluster() const { return impl_->cluster; }

std::variant<std::unique_ptr<DevBroker>, std::string> DevBroker::start(const Options& options) {
  if (options.port < 0 || options.port > 65535) return fmt::format("port {} is not 0 to 65535", options.port);
  if (options.partitions < 1 || options.partitions > kMaxPartitions)
    return fmt::format("{} partitions per topic: must be 1 to {}", options.partitions, kMaxPartitions);
  auto impl = std::make_unique<Impl>();
  char err[512];
  rd_kafka_conf_t* conf = rd_kafka_conf_new();
  rd_kafka_conf_set(conf, "log_level", "3", err, sizeof err);
  impl->handle = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof err);
  if (!impl->handle) return fmt::format("cannot create the mock cluster's handle: {}", err);
  impl->cluster = rd_kafka_mock_cluster_new(impl->handle, options.brokers);
  if (!impl->cluster) return std::string("cannot create the mock cluster");
  for (const auto& topic : options.topics)
    if (auto e = rd_kafka_mock_topic_create(impl->cluster, topic.c_str(), options.partitions, 1))
      return fmt::format("cannot create topic {}: {}", topic, rd_kafka_err2str(e));
  std::string bootstraps = rd_kafka_mock_cluster_bootstraps(impl->cluster);
  const std::string first = bootstraps.substr(0, bootstraps.find(','));

  std::string bootstrap = bootstraps;
  if (options.port > 0) {
    impl->listen_fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    const int one = 1;
    ::setsockopt(impl->listen_fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(static_cast<uint16_t>(options.port));
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::bind(impl->listen_fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
        ::listen(impl->listen_fd, 64) != 0)
      return fmt::format("cannot listen on 127.0.0.1:{}: {}", options.port, std::strerror(errno));
    impl->acceptor = std::thread([p = impl.get(), first] { p->accept_loop(first); });
    bootstrap = fmt::format("127.0.0.1:{}", options.port);
  }
  auto broker = std::unique_ptr<DevBroker>(new DevBroker(std::move(impl)));
  broker->bootstrap_ = bootstrap;
  return broker;
}

}  // namespace civicsift
