"""VerifyFace and VerifyPerson against enrolled persons.

Same and different persons through the SDK over HTTP, in both API versions and another
signing; the error cases in-process (``inproc``).
"""

from images import b64, lfw


def _enrol(client, person, name, numbers):
    client.call("CreateGroup", GroupId="g", GroupName="G") if not client.call(
        "GetGroupList")["GroupNum"] else None
    client.call("CreatePerson", GroupId="g", PersonId=person, PersonName=name,
                Image=lfw(name, numbers[0]))
    if len(numbers) > 1:
        client.call("CreateFace", PersonId=person, Images=[lfw(name, n) for n in numbers[1:]],
                    FaceMatchThreshold=0)


def test_verify_face_and_person_same_and_different(api):
    _enrol(api, "colin", "Colin_Powell", [38, 40, 49])
    _enrol(api, "tony", "Tony_Blair", [6, 18])
    for action in ("VerifyFace", "VerifyPerson"):
        same = api.call(action, PersonId="colin", Image=lfw("Colin_Powell", 71))
        other = api.call(action, PersonId="colin", Image=lfw("Tony_Blair", 32))
        assert same["IsMatch"] is True and same["Score"] >= 60, (action, same)
        assert other["IsMatch"] is False and other["Score"] < 60, (action, other)
        assert same["FaceModelVersion"] == "3.0"
        old = api.variant(version="2018-03-01", sign="HmacSHA256").call(
            action, PersonId="tony", Image=lfw("Tony_Blair", 32))
        assert old["IsMatch"] is True


def test_verify_errors(inproc):
    _enrol(inproc, "colin", "Colin_Powell", [38])
    assert inproc.code("VerifyFace", PersonId="nobody", Image=lfw("Colin_Powell", 40)) == \
        "InvalidParameterValue.PersonIdNotExist"
    assert inproc.code("VerifyPerson", PersonId="colin",
                       Image=b64("insightface/inspireface_test_res/data/bulk/view.jpg")) == \
        "InvalidParameterValue.NoFaceInPhoto"
    assert inproc.code("VerifyFace", PersonId="colin") == "InvalidParameterValue.ImageEmpty"
    assert inproc.code("VerifyFace", PersonId="colin", Image=lfw("Colin_Powell", 40),
                       QualityControl=9) == "InvalidParameterValue.QualityControlIllegal"


def test_verify_person_refuses_model_version_2(inproc):
    inproc.call("CreateGroup", GroupId="old", GroupName="Old", FaceModelVersion="2.0")
    inproc.call("CreatePerson", GroupId="old", PersonId="p", PersonName="P",
                Image=lfw("Colin_Powell", 38))
    assert inproc.code("VerifyPerson", PersonId="p", Image=lfw("Colin_Powell", 40)) == \
        "InvalidParameterValue.UnsupportedGroupFaceModelVersion"
    assert inproc.call("VerifyFace", PersonId="p", Image=lfw("Colin_Powell", 40))["IsMatch"]
