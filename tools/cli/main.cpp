// moeinfer CLI entry: dispatches subcommands; every error becomes one line on stderr and exit code 1.
#include <cstdio>
#include <exception>
#include <string>

#include "backends/cpu/kernel_isa.h"
#include "commands.h"

int main(int argc, char** argv) {
    using namespace moeinfer::cli;
    const std::string usage =
        "usage: moeinfer <command> [flags]\n"
        "commands:\n"
        "  run   --model PATH (--prompt TEXT | --messages F.json | --prompt-tokens 1,2,3) [-n N] [--temperature T] [--top-k K]\n"
        "        [--top-p P] [--min-p P] [--seed S] [--logprobs K] [--echo] [--json] [--threads N] [--ignore-eos]\n"
        "        [--spec-ngram K | --draft-model PATH [--spec-draft K]] [--typical-p P] [--logit-bias ID=B,...] [--beam-width W [--length-penalty L]\n"
        "        [--early-stopping true|false|never] [--num-return-sequences N]] [--n N]\n"
        "        [--presence-penalty P] [--frequency-penalty P] [--repetition-penalty P] [--min-tokens N]\n"
        "        [--stop STRING] [--stop-token-ids 1,2] [--device cpu|cuda|cuda:N [--random-weights]]\n"
        "  info  --model PATH\n"
        "  convert --model PATH --out FILE.gguf [--type F32|F16|BF16|Q8_0|Q4_0]\n"
        "  bench --model PATH [-p 512] [-n 128] [-t THREADS] [-r 3] [-b SEQUENCES] [--json] [--device cpu|cuda]\n"
        "        [--random-weights (PATH is a config.json; GPU only)]\n"
        "  perplexity --model PATH --file TEXT [--ctx 512] [--chunks N] [--threads N] [--device cpu|cuda]\n"
        "  quantize IN OUT [--type Q4_K_M|Q4_K_S|Q5_K_M|Q6_K|Q8_0|Q4_0|F16|BF16]\n"
        "  tokenize --model PATH [--special] TEXT|-\n"
        "  detokenize --model PATH [--skip-special] 1,2,3\n"
        "  chat-template --model PATH --messages FILE.json [--add-generation-prompt]\n"
        "  serve --model PATH [--host 127.0.0.1] [--port 8080] [--api-key KEY] [--served-model-name NAME]\n"
        "        [--max-num-seqs N] [--max-num-batched-tokens N] [--kv-cache-mib N] [--threads N]\n"
        "        [--device cpu|cuda|cuda:N] [--random-weights]\n";
    if (argc < 2 || std::string(argv[1]) == "--help" || std::string(argv[1]) == "-h") {
        std::fputs(usage.c_str(), argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    const std::string cmd = argv[1];
    try {
        moeinfer::cpu::active_kernel_isa();  // a bad MOEINFER_CPU_KERNELS is reported before any work starts
        if (cmd == "run") return cmd_run(argc - 2, argv + 2);
        if (cmd == "info") return cmd_info(argc - 2, argv + 2);
        if (cmd == "convert") return cmd_convert(argc - 2, argv + 2);
        if (cmd == "bench") return cmd_bench(argc - 2, argv + 2);
        if (cmd == "perplexity") return cmd_perplexity(argc - 2, argv + 2);
        if (cmd == "quantize") return cmd_quantize(argc - 2, argv + 2);
        if (cmd == "tokenize") return cmd_tokenize(argc - 2, argv + 2);
        if (cmd == "detokenize") return cmd_detokenize(argc - 2, argv + 2);
        if (cmd == "chat-template") return cmd_chat_template(argc - 2, argv + 2);
        if (cmd == "serve") return cmd_serve(argc - 2, argv + 2);
        std::fprintf(stderr, "moeinfer: unknown command '%s'\n%s", cmd.c_str(), usage.c_str());
        return 2;
    } catch (const std::exception& e) {
        std::fprintf(stderr, "moeinfer %s: error: %s\n", cmd.c_str(), e.what());
        return 1;
    }
}
