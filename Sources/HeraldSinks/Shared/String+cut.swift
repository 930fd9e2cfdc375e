extension String {
    /// At most `limit` characters; a cut text ends in `…` so the reader sees that it was cut.
    func cut(to limit: Int) -> String {
        count > limit ? String(prefix(limit - 1)) + "…" : self
    }
}
