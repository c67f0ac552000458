package io.vblk.qmp;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;

import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;

import org.junit.jupiter.api.Test;

/** The request splitter: requests across reads, several in one read, strings with brackets, recovery. */
class JsonStreamerTest {
    private final List<JsonStreamer.Piece> got = new ArrayList<>();
    private final JsonStreamer s = new JsonStreamer(got::add);

    private void feed(String t) {
        byte[] b = t.getBytes(StandardCharsets.UTF_8);
        s.feed(b, 0, b.length);
    }

    @Test
    void aRequestSplitOverReadsIsHandedOnWhenItsBraceCloses() {
        feed("{\"execute\": \"qu");
        assertEquals(0, got.size());
        feed("it\"}");
        assertEquals(1, got.size());
        assertEquals("{\"execute\": \"quit\"}", got.get(0).text());
    }

    @Test
    void bracketsInsideStringsAndEscapedQuotesDoNotCount() {
        feed("{\"a\":\"}]\\\"{\"}{\"b\":[1,{}]}\n");
        assertEquals(2, got.size());
        assertEquals("{\"a\":\"}]\\\"{\"}", got.get(0).text());
        assertEquals("{\"b\":[1,{}]}", got.get(1).text());
    }

    @Test
    void scalarsAndStrayBracketsAreReportedAndTheStreamGoesOn() {
        feed("3 }{\"x\":1}");
        assertEquals(3, got.size());
        assertEquals("3", got.get(0).text());
        assertNull(got.get(1).text());
        assertEquals("JSON parse error, stray '}'", got.get(1).problem());
        assertEquals("{\"x\":1}", got.get(2).text());
    }

    @Test
    void aMismatchedBracketIsOneErrorAndTheRestOfItsLineIsSkipped() {
        feed("{\"execute\": \"quit\"]}\n{\"ok\":1}");
        assertEquals(2, got.size(), got.toString());
        assertEquals("JSON parse error, ']' does not close '{'", got.get(0).problem());
        assertEquals("{\"ok\":1}", got.get(1).text());
    }

    @Test
    void tooDeepNestingIsRefusedAndTheNextLineIsRead() {
        feed("[".repeat(JsonStreamer.MAX_NESTING + 1) + "\n{\"ok\":1}");
        assertEquals(2, got.size(), got.toString());
        assertEquals("JSON parse error, nesting too deep", got.get(0).problem());
        assertEquals("{\"ok\":1}", got.get(1).text());
    }
}
