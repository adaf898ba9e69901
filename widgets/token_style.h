// How tokens look everywhere: probability colours and visible whitespace (UX.md: "· for space,
// ⏎ for newline"), shared by the chat and the live views so one token reads the same in each.
#pragma once
#include <QColor>
#include <QString>
#include <vector>

#include "widgets/token_snapshot.h"

namespace tokenStyle {

// Background tint for a token of probability p: near-white when the model was sure, a warmer
// orange the more surprising it was. Log scale, because 0.5 vs 0.05 matters more than 0.9 vs 0.95.
QColor probabilityColor(float p);

// Whitespace and control characters made visible: "·" space, "⏎" newline, "→" tab.
QString visibleText(const QString& text);

// Tooltip body (rich text) for a token: its text, id, probability and the top-k alternatives.
QString tokenTooltip(const ChatToken& token);

// "37.2%", "0.41%", "<0.01%".
QString percent(float p);

}  // namespace tokenStyle
