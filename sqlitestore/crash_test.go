package sqlitestore

const helperEnv = "SQLITESTORE_CRASH_HELPER"

func helperMain() {}
