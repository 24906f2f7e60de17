// config.json in both transformers styles (4.x rope_theta + rope_scaling, 5.x rope_parameters) gives the same
// model; range and type errors name the file and the field.
#include <gtest/gtest.h>

#include <filesystem>
#include <algorithm>
#include <fstream>
#include <functional>

#include "core/json.h"
#include "golden_util.h"
#include "models/model.h"

namespace moeinfer::test {
namespace {

namespace fs = std::filesystem;

// Copies a golden model into a temp dir with its config rewritten by `edit`.
std::string rewritten_copy(const std::string& family, const std::string& tag,
                           const std::function<void(json::Value&)>& edit) {
    const std::string src = golden_dir(family);
    const fs::path dir = fs::path(::testing::TempDir()) / ("cfg_" + family + "_" + tag);
    fs::create_directories(dir);
    fs::copy_file(src + "/model.safetensors", dir / "model.safetensors", fs::copy_options::overwrite_existing);
    json::Value cfg = json::parse_file(src + "/config.json");
    edit(cfg);
    std::ofstream(dir / "config.json") << cfg.dump();
    return dir.string();
}

// transformers 4.x spelling of the same rope settings: top-level rope_theta + rope_scaling.
void to_v4(json::Value& cfg, const char* type_key) {
    const json::Value params = cfg.at("rope_parameters");
    json::Value scaling = json::Value::object();
    for (const auto& [k, v] : params.as_object()) {
        if (k == "rope_theta") cfg.set("rope_theta", v);
        else scaling.set(k == "rope_type" ? type_key : k, v);
    }
    cfg.as_object().erase(std::remove_if(cfg.as_object().begin(), cfg.as_object().end(),
                                         [](const auto& kv) { return kv.first == "rope_parameters"; }),
                          cfg.as_object().end());
    if (scaling.at(type_key).as_string() != "default") cfg.set("rope_scaling", scaling);
}

std::vector<float> last_logits(Model& m, const std::vector<int32_t>& prompt) {
    KvCache kv(4, 16, m.kv_widths());
    BlockTable table;
    EXPECT_TRUE(table.reserve(kv.pool(), prompt.size(), 16));
    Batch b;
    b.add_sequence(prompt.data(), prompt.size(), 0, table.blocks.data(), false);
    std::vector<float> logits(m.config().vocab_size);
    m.forward(b, kv, logits.data());
    return logits;
}

TEST(HfConfig, V4AndV5RopeStylesGiveTheSameModel) {
    const Golden g = load_golden("llama");  // llama3 rope scaling: the interesting case
    auto v5 = Model::load(g.dir);
    for (const char* key : {"rope_type", "type"}) {
        auto v4 = Model::load(rewritten_copy("llama", key, [&](json::Value& c) { to_v4(c, key); }));
        EXPECT_EQ(v4->config().rope.scaling, RopeScaling::Llama3);
        EXPECT_EQ(v4->inv_freq(), v5->inv_freq());
        EXPECT_EQ(last_logits(*v4, g.prompts[2]), last_logits(*v5, g.prompts[2]));
    }
    // And the scaling matters: without it the frequencies differ.
    auto plain = Model::load(rewritten_copy("llama", "plain", [](json::Value& c) {
        c.set("rope_parameters", json::parse(R"({"rope_type":"default","rope_theta":10000.0})"));
    }));
    EXPECT_NE(plain->inv_freq(), v5->inv_freq());
}

TEST(HfConfig, ErrorsNameFileAndField) {
    auto expect_error = [](const std::string& dir, const std::string& what) {
        try {
            Model::load(dir);
            ADD_FAILURE() << "no error for " << what;
        } catch (const std::runtime_error& e) {
            EXPECT_NE(std::string(e.what()).find(what), std::string::npos) << e.what();
            EXPECT_NE(std::string(e.what()).find("config.json"), std::string::npos) << e.what();
        }
    };
    expect_error(rewritten_copy("qwen3", "yarn", [](json::Value& c) {
                     c.set("rope_parameters", json::parse(R"({"rope_type":"yarn","rope_theta":1e4,"factor":4})"));
                 }),
                 "unsupported rope type 'yarn'");
    expect_error(rewritten_copy("qwen3", "vocab", [](json::Value& c) { c.set("vocab_size", -3); }),
                 "vocab_size = -3 must be positive");
    expect_error(rewritten_copy("qwen3", "type", [](json::Value& c) { c.set("hidden_size", "64"); }),
                 "hidden_size");
    expect_error(rewritten_copy("qwen3_moe", "topk", [](json::Value& c) { c.set("num_experts_per_tok", 9); }),
                 "num_experts_per_tok = 9 is out of range");
}

}  // namespace
}  // namespace moeinfer::test
