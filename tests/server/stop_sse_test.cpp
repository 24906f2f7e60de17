// Stop strings across piece boundaries (with hold-back) and SSE framing.
#include <gtest/gtest.h>

#include "server/sse.h"
#include "server/stop_matcher.h"

namespace moeinfer::server {
namespace {

// Feeds `pieces`; returns everything emitted (plus the flushed tail when no stop hit) and whether it stopped.
std::pair<std::string, bool> run(std::vector<std::string> stops, std::vector<std::string> pieces) {
    StopMatcher m(std::move(stops));
    std::string out;
    for (const auto& p : pieces) {
        auto r = m.push(p);
        out += r.emit;
        if (r.stopped) return {out, true};
    }
    return {out + m.flush(), false};
}

TEST(StopMatcher, NoStopsPassesThrough) {
    StopMatcher m;
    EXPECT_EQ(m.push("abc").emit, "abc");
    EXPECT_EQ(m.flush(), "");
}

TEST(StopMatcher, StopInsideOnePiece) {
    auto [out, stopped] = run({"END"}, {"hello END world"});
    EXPECT_TRUE(stopped);
    EXPECT_EQ(out, "hello ");
}

TEST(StopMatcher, StopAcrossPiecesIsHeldBackAndCut) {
    StopMatcher m({"\n\nUser:"});
    EXPECT_EQ(m.push("Hi").emit, "Hi");
    EXPECT_EQ(m.push("\n").emit, "");  // could start the stop string
    EXPECT_EQ(m.push("\nUs").emit, "");
    auto r = m.push("er: more");
    EXPECT_TRUE(r.stopped);
    EXPECT_EQ(r.emit, "");
    EXPECT_EQ(m.push("ignored").emit, "");
}

TEST(StopMatcher, FalseStartIsReleased) {
    auto [out, stopped] = run({"abc"}, {"xa", "b", "d", "ab"});
    EXPECT_FALSE(stopped);
    EXPECT_EQ(out, "xabdab");  // the final "ab" is held until flush
    StopMatcher m({"abc"});
    EXPECT_EQ(m.push("xab").emit, "x");
    EXPECT_EQ(m.push("d").emit, "abd");
}

TEST(StopMatcher, EarliestOfSeveralAndOverlaps) {
    auto [out, stopped] = run({"cd", "bcx", "zz"}, {"ab", "c", "d"});
    EXPECT_TRUE(stopped);
    EXPECT_EQ(out, "ab");  // "bc" was held for "bcx"; "cd" completes first at offset 2
    auto [out2, stopped2] = run({"aab"}, {"a", "a", "a", "b"});
    EXPECT_TRUE(stopped2);
    EXPECT_EQ(out2, "a");
}

TEST(StopMatcher, EveryPieceSplitGivesTheSameResult) {
    const std::string text = "one two <|stop|> three";
    for (size_t cut1 = 0; cut1 <= text.size(); ++cut1)
        for (size_t cut2 = cut1; cut2 <= text.size(); ++cut2) {
            auto [out, stopped] = run({"<|stop|>", "<|end"}, {text.substr(0, cut1), text.substr(cut1, cut2 - cut1),
                                                               text.substr(cut2)});
            ASSERT_TRUE(stopped);
            ASSERT_EQ(out, "one two ") << cut1 << "," << cut2;
        }
}

TEST(Sse, EventFramingAndParse) {
    EXPECT_EQ(sse_event(std::string_view("{\"a\":1}")), "data: {\"a\":1}\n\n");
    EXPECT_EQ(sse_event(std::string_view("x\ny")), "data: x\ndata: y\n\n");
    json::Value v = json::Value::object();
    v.set("text", "line\nbreak");  // JSON escapes the newline: still one data line
    EXPECT_EQ(sse_event(v), "data: {\"text\":\"line\\nbreak\"}\n\n");
    std::string stream = sse_event(std::string_view("1")) + ": comment\n" + sse_event(std::string_view("a\nb")) +
                         std::string(sse_done()) + "data: incompl";
    auto events = sse_parse(stream);
    ASSERT_EQ(events.size(), 3u);
    EXPECT_EQ(events[0], "1");
    EXPECT_EQ(events[1], "a\nb");
    EXPECT_EQ(events[2], "[DONE]");
}

}  // namespace
}  // namespace moeinfer::server
