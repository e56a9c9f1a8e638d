// kvpool/kvpool.h: umbrella header for the C++ API.
#pragma once

#include <kvpool/keys.h>
#include <kvpool/model_shape.h>
#include <kvpool/options.h>
#include <kvpool/pool.h>
#include <kvpool/result.h>
#include <kvpool/status.h>
