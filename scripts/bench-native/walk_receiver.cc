// A WalkFile receiver that is not Python: drains pfs_v2.API/WalkFile as raw messages and prints
// "<messages> <seconds>" per round, so scripts/bench-pfs-server can tell whether its Python client
// is what limits the stream. Built by the bench with Debian's libgrpc++-dev when it is installed.
#include <grpcpp/grpcpp.h>
#include <grpcpp/support/byte_buffer.h>
#include <grpcpp/support/sync_stream.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>

int main(int argc, char** argv) {
  if (argc != 4) {
    fprintf(stderr, "usage: walk_receiver HOST:PORT REQUEST_HEX ROUNDS\n");
    return 2;
  }
  std::string hex = argv[2], request;
  for (size_t i = 0; i + 1 < hex.size(); i += 2) request.push_back((char)strtol(hex.substr(i, 2).c_str(), nullptr, 16));
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(20 << 20);
  auto channel = grpc::CreateCustomChannel(argv[1], grpc::InsecureChannelCredentials(), args);
  grpc::internal::RpcMethod method("/pfs_v2.API/WalkFile", grpc::internal::RpcMethod::SERVER_STREAMING);
  for (int round = 0; round < atoi(argv[3]); round++) {
    grpc::Slice slice(request);
    grpc::ByteBuffer body(&slice, 1), message;
    grpc::ClientContext context;
    auto t0 = std::chrono::steady_clock::now();
    std::unique_ptr<grpc::ClientReader<grpc::ByteBuffer>> reader(
        grpc::internal::ClientReaderFactory<grpc::ByteBuffer>::Create(channel.get(), method, &context, body));
    long n = 0;
    while (reader->Read(&message)) n++;
    grpc::Status status = reader->Finish();
    double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (!status.ok()) {
      fprintf(stderr, "WalkFile failed: %s\n", status.error_message().c_str());
      return 1;
    }
    printf("%ld %.6f\n", n, seconds);
    fflush(stdout);
  }
  return 0;
}
