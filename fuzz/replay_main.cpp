// Replays a fuzz target's corpus without libFuzzer, in the ordinary (g++) build: each file given, or each file of
// each folder given, goes once through LLVMFuzzerTestOneInput. The test suite runs it on the kept corpus, so an
// input that once crashed a target (and was added to the corpus) stays fixed.
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <iterator>
#include <string>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size);

int main(int argc, char** argv) {
  std::size_t replayed = 0;
  for (int index = 1; index < argc; ++index) {
    std::vector<std::filesystem::path> files;
    if (std::filesystem::is_directory(argv[index])) {
      for (const auto& entry : std::filesystem::directory_iterator{argv[index]})
        if (entry.is_regular_file())
          files.push_back(entry.path());
    } else {
      files.emplace_back(argv[index]);
    }
    for (const auto& file : files) {
      std::ifstream input{file, std::ios::binary};
      if (!input) {
        std::cerr << "cannot read " << file << '\n';
        return 2;
      }
      std::string bytes{std::istreambuf_iterator<char>{input}, std::istreambuf_iterator<char>{}};
      LLVMFuzzerTestOneInput(reinterpret_cast<const std::uint8_t*>(bytes.data()), bytes.size());
      ++replayed;
    }
  }
  std::cout << replayed << " inputs replayed\n";
  return replayed > 0 ? 0 : 1;
}
