-- Argo CD health check for bentham.io/Study (resource.customizations.health.bentham.io_Study).
--
-- status.state           health       why
-- (no status yet)        Progressing  the operator has not picked the study up yet
-- manifest_received,
-- validating, queued,
-- executing,
-- validating_results     Progressing  the study is on its way (at risk of its deadline: still Progressing, said in the message)
-- paused                 Suspended    spec.paused: it waits for someone to resume it
-- complete               Healthy      every required surface reached its coverage threshold
-- cancelled              Healthy      spec.cancel asked for it: the study is where Git says it should be, and
--                                     nothing is wrong or waiting; the message says it was cancelled
-- failed                 Degraded     it ended without its results
-- human_intervention_required
--                        Degraded     it stopped until a person acts
-- anything else          Unknown      a state this check does not know (a newer operator?)
--
-- A live (non-terminal) study whose status.observedGeneration is behind metadata.generation is
-- Progressing: the operator has not yet acted on the latest spec (e.g. a resume just applied).
-- Terminal studies keep their last status, so the generation is not checked for them.

local hs = {}

local function summary(status)
  local parts = {}
  if status.progress ~= nil and status.progress.summary ~= nil then
    table.insert(parts, status.progress.summary .. " cells")
  end
  if status.message ~= nil and status.message ~= "" then
    table.insert(parts, status.message)
  end
  return table.concat(parts, "; ")
end

local function with_state(state, status)
  local text = summary(status)
  if text == "" then
    return state
  end
  return state .. ": " .. text
end

local status = obj.status
if status == nil or status.state == nil then
  hs.status = "Progressing"
  hs.message = "Waiting for the operator to pick up the study"
  return hs
end

local state = status.state
local terminal = state == "complete" or state == "failed" or state == "cancelled"
local generation = obj.metadata and obj.metadata.generation
if not terminal and generation ~= nil and (status.observedGeneration == nil or status.observedGeneration < generation) then
  hs.status = "Progressing"
  hs.message = "Waiting for the operator to act on generation " .. tostring(generation) .. " (" .. state .. ")"
  return hs
end

if state == "complete" then
  hs.status = "Healthy"
  hs.message = with_state("Complete", status)
elseif state == "cancelled" then
  hs.status = "Healthy"
  local label = "Cancelled as requested"
  if obj.spec ~= nil and obj.spec.cancel ~= nil and obj.spec.cancel.reason ~= nil then
    label = label .. " (" .. obj.spec.cancel.reason .. ")"
  end
  hs.message = with_state(label, status)
elseif state == "paused" then
  hs.status = "Suspended"
  hs.message = with_state("Paused", status)
elseif state == "failed" then
  hs.status = "Degraded"
  hs.message = with_state("Failed", status)
elseif state == "human_intervention_required" then
  hs.status = "Degraded"
  hs.message = with_state("Needs a person", status)
elseif state == "manifest_received" or state == "validating" or state == "queued"
    or state == "executing" or state == "validating_results" then
  hs.status = "Progressing"
  local message = with_state(state, status)
  if status.deadline ~= nil and status.deadline.atRisk == true then
    message = message .. " (at risk of missing the deadline)"
  end
  hs.message = message
else
  hs.status = "Unknown"
  hs.message = "Unknown study state " .. tostring(state)
end
return hs
