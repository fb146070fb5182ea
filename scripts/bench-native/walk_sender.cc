// A native WalkFile sender: answers pfs_v2.API/WalkFile with COUNT copies of one prepared FileInfo,
// one message per write, as a C++ gRPC server does (callback API). scripts/bench-pfs-server compares
// it with the Python sender of the same messages: what moving the stream out of Python would give.
// Prints "up" once listening, then on stderr "<messages> <seconds>" per call, timed from the first
// write to the completion of the last (the server-side time).
#include <grpcpp/generic/async_generic_service.h>
#include <grpcpp/grpcpp.h>
#include <grpcpp/support/byte_buffer.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>

static grpc::ByteBuffer message;
static long count;

class Walk : public grpc::ServerGenericBidiReactor {
 public:
  Walk() { StartRead(&request_); }
  void OnReadDone(bool ok) override {
    if (!ok) return Finish(grpc::Status::OK);
    t0_ = std::chrono::steady_clock::now();
    Next();
  }
  void OnWriteDone(bool ok) override {
    if (!ok) return Finish(grpc::Status::CANCELLED);
    Next();
  }
  void OnDone() override { delete this; }

 private:
  void Next() {
    if (sent_ < count) {
      sent_++;
      return StartWrite(&message);
    }
    double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0_).count();
    fprintf(stderr, "%ld %.6f\n", sent_, seconds);
    Finish(grpc::Status::OK);
  }
  grpc::ByteBuffer request_;
  long sent_ = 0;
  std::chrono::steady_clock::time_point t0_;
};

class Service : public grpc::CallbackGenericService {
  grpc::ServerGenericBidiReactor* CreateReactor(grpc::GenericCallbackServerContext*) override { return new Walk(); }
};

int main(int argc, char** argv) {
  if (argc != 4) {
    fprintf(stderr, "usage: walk_sender PORT MESSAGE_HEX COUNT\n");
    return 2;
  }
  std::string hex = argv[2], bytes;
  for (size_t i = 0; i + 1 < hex.size(); i += 2) bytes.push_back((char)strtol(hex.substr(i, 2).c_str(), nullptr, 16));
  grpc::Slice slice(bytes);
  message = grpc::ByteBuffer(&slice, 1);
  count = atol(argv[3]);
  Service service;
  grpc::ServerBuilder builder;
  builder.AddListeningPort(std::string("127.0.0.1:") + argv[1], grpc::InsecureServerCredentials());
  builder.RegisterCallbackGenericService(&service);
  auto server = builder.BuildAndStart();
  if (!server) return 1;
  printf("up\n");
  fflush(stdout);
  server->Wait();
}
