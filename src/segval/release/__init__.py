"""Dataset releases: versions and diffs (:mod:`.versions`), the baseline bundled with a release
(:mod:`.baseline`), the dataset card (:mod:`.card`), loader snippets (:mod:`.loaders`), the Hugging Face Hub
upload (:mod:`.publish`) and the config resolvers that read releases by version (:mod:`.resolvers`)."""
